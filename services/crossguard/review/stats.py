"""What the lead view and the admin page show: queue health, reviewer throughput, agreement
rates, recently decided tasks and the audit log's tail (read-only queries)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine, Row

from crossguard.review.schema import audit_log, tasks, users, verdicts


class LeadStats:
    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def recent_decided(self, limit: int = 20) -> list[Row[Any]]:
        with self.engine.begin() as conn:
            return list(
                conn.execute(
                    select(tasks)
                    .where(tasks.c.state == "decided")
                    .order_by(tasks.c.decided_at.desc())
                    .limit(limit)
                ).all()
            )

    def health(self) -> dict[str, Any]:
        """Queue health for the lead view: open per tier, leased, overdue, oldest."""
        now = self.clock()
        with self.engine.begin() as conn:
            by_tier: dict[str, int] = {
                str(tier): int(n)
                for tier, n in conn.execute(
                    select(tasks.c.tier, func.count())
                    .where(tasks.c.state == "open")
                    .group_by(tasks.c.tier)
                ).all()
            }
            leased = conn.execute(
                select(func.count()).where(tasks.c.state == "open", tasks.c.lease_until >= now)
            ).scalar_one()
            overdue = conn.execute(
                select(func.count()).where(tasks.c.state == "open", tasks.c.due_at < now)
            ).scalar_one()
            oldest = conn.execute(
                select(func.min(tasks.c.created_at)).where(tasks.c.state == "open")
            ).scalar()
            decided_24h = conn.execute(
                select(func.count()).where(
                    tasks.c.state == "decided", tasks.c.decided_at >= now - timedelta(days=1)
                )
            ).scalar_one()
        return {
            "open_reviewer": int(by_tier.get("reviewer", 0)),
            "open_lead": int(by_tier.get("lead", 0)),
            "leased": int(leased),
            "overdue": int(overdue),
            "oldest_age": (now - oldest) if oldest is not None else None,
            "decided_24h": int(decided_24h),
        }

    def throughput(self, hours: int = 24) -> list[dict[str, Any]]:
        """Per reviewer: verdicts in the window and agreement with the final decision."""
        since = self.clock() - timedelta(hours=hours)
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(
                    verdicts.c.reviewer,
                    func.count().label("verdicts"),
                    func.sum(
                        func.cast(verdicts.c.action == tasks.c.final_action, users.c.id.type)
                    ).label("agreed"),
                    func.count(tasks.c.final_action).label("closed"),
                )
                .select_from(verdicts.join(tasks, tasks.c.task_id == verdicts.c.task_id))
                .where(verdicts.c.created_at >= since)
                .group_by(verdicts.c.reviewer)
                .order_by(func.count().desc())
            ).all()
        return [
            {
                "reviewer": r.reviewer,
                "verdicts": int(r.verdicts),
                "agreement": (int(r.agreed or 0) / int(r.closed)) if r.closed else None,
            }
            for r in rows
        ]

    def agreement(self) -> dict[str, Any]:
        """Inter-reviewer agreement on tasks with two or more reviewer verdicts."""
        with self.engine.begin() as conn:
            rows = conn.execute(
                select(
                    verdicts.c.task_id,
                    func.count().label("n"),
                    func.count(func.distinct(verdicts.c.action)).label("actions"),
                )
                .where(verdicts.c.is_lead.is_(False))
                .group_by(verdicts.c.task_id)
                .having(func.count() >= 2)
            ).all()
        pairs = len(rows)
        agreed = sum(1 for r in rows if r.actions == 1)
        return {"tasks": pairs, "agreed": agreed, "rate": (agreed / pairs) if pairs else None}

    def audit_entries(self, limit: int = 100) -> list[Row[Any]]:
        with self.engine.begin() as conn:
            return list(
                conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).all()
            )
