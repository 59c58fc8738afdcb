"""The review queue on a SQL database: ingest, claim with leases, skip, escalate, verdicts with
consensus, appeals, the outbox of final decisions, retention, and the audit log.

Plain synchronous domain code over a SQLAlchemy engine (no HTTP, no Kafka): the web layer and
the consumer call it, tests call it directly. Every state change and its audit entry commit in
one transaction; a verdict that closes a task writes the final decision and feedback to the
outbox in that same transaction, so a crash can neither lose a verdict nor publish a decision
without one, and the outbox's unique (task, kind) makes a second final decision impossible.

Claims: PostgreSQL locks the candidate row with FOR UPDATE SKIP LOCKED, so concurrent
reviewers never wait on or take the same task; SQLite serialises writers (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row
from sqlalchemy.exc import IntegrityError

from crossguard.core.errors import InvalidInput
from crossguard.policy.loader import PolicyStore
from crossguard.review import outcomes, priority
from crossguard.review.errors import BadVerdict, Conflict, Forbidden, LeaseLost, TaskNotFound
from crossguard.review.schema import (
    audit_log,
    outbox,
    skips,
    task_content,
    task_scores,
    tasks,
    verdicts,
)
from crossguard.review.settings import ReviewSettings
from crossguard.v1 import content_pb2, decision_pb2, review_pb2

log = logging.getLogger(__name__)

ROLES = ("reviewer", "lead", "admin")
LEAD_ROLES = frozenset({"lead", "admin"})
APPEAL_NAMESPACE = uuid.UUID("a7e5d0c4-3b1f-4e8a-b6c2-9d0f1e2a3b4c")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    reveal_media: bool = False

    @property
    def is_lead(self) -> bool:
        return self.role in LEAD_ROLES


@dataclass(frozen=True)
class TaskView:
    """A task as the UI shows it: the row, its content (None once retention deleted it) and
    the verdicts so far."""

    row: Row[Any]
    item: content_pb2.ContentItem | None
    decision: decision_pb2.ModerationDecision | None
    verdicts: list[Row[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class VerdictResult:
    final: bool
    action: str | None  # the final action when final
    to_lead: bool  # reviewers disagreed: a lead breaks the tie


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    kind: str
    key: str
    payload: bytes


def strip_inline_media(item: content_pb2.ContentItem) -> content_pb2.ContentItem:
    """A copy without inline media bytes: the store keeps references (URI, sha256, type) only."""
    out = content_pb2.ContentItem()
    out.CopyFrom(item)
    for part in out.parts:
        if part.HasField("media") and part.media.WhichOneof("source") == "inline_data":
            part.media.ClearField("inline_data")
    return out


def _timestamp(
    task: review_pb2.ReviewTask, name: Literal["created_at", "sla_deadline"]
) -> datetime | None:
    """A task's timestamp field as an aware datetime; InvalidInput when it is out of range
    (a datetime holds years 1-9999; protobuf accepts any int64 seconds)."""
    if not task.HasField(name):
        return None
    try:
        return getattr(task, name).ToDatetime(UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(f"review task {task.task_id} has an out-of-range {name}") from None


class ReviewStore:
    def __init__(
        self,
        engine: Engine,
        settings: ReviewSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.clock = clock
        self._pg = engine.dialect.name == "postgresql"
        # Words the statements of reasons of final decisions (hot-reloaded like the pipeline's).
        self.policies = PolicyStore(settings.policy_path)

    # -- audit ---------------------------------------------------------------------------

    @staticmethod
    def _audit(
        conn: Connection,
        now: datetime,
        actor: str,
        action: str,
        task_id: str | None = None,
        detail: str = "",
    ) -> None:
        conn.execute(
            insert(audit_log).values(
                at=now, actor=actor, action=action, task_id=task_id, detail=detail[:512]
            )
        )

    def audit(self, actor: str, action: str, task_id: str | None = None, detail: str = "") -> None:
        with self.engine.begin() as conn:
            self._audit(conn, self.clock(), actor, action, task_id, detail)

    def revealed(self, user: User, task_id: str) -> bool:
        """Whether this reviewer may see the task's media unblurred: their no-blur preference,
        or a reveal of this task recorded in the audit log."""
        if user.reveal_media:
            return True
        with self.engine.connect() as conn:
            row = conn.execute(
                select(audit_log.c.id)
                .where(
                    audit_log.c.task_id == task_id,
                    audit_log.c.actor == user.username,
                    audit_log.c.action == "reveal",
                )
                .limit(1)
            ).first()
        return row is not None

    # -- ingest --------------------------------------------------------------------------

    def ingest(self, task: review_pb2.ReviewTask) -> bool:
        """Store a task from crossguard.review.v1; False if its id was already stored."""
        if not task.task_id or len(task.task_id) > 64:
            raise InvalidInput("review task without a valid task_id")
        if not task.item.id:
            raise InvalidInput(f"review task {task.task_id} has no content id")
        now = self.clock()
        decision = task.decision
        tri = priority.triage(decision)
        created = _timestamp(task, "created_at") or now
        sla = priority.sla_minutes(
            tri.categories, self.settings.sla_minutes, self.settings.default_sla_minutes
        )
        try:
            due = created + timedelta(minutes=sla)
        except OverflowError:
            raise InvalidInput(
                f"review task {task.task_id} has an out-of-range created_at"
            ) from None
        deadline = _timestamp(task, "sla_deadline")
        if deadline is not None:
            due = min(due, deadline)
        required = max(1, int(task.required_verdicts), self._consensus_needed(tri))
        item = strip_inline_media(task.item)
        item_bytes = item.SerializeToString()
        decision_bytes = decision.SerializeToString()
        if len(item_bytes) + len(decision_bytes) > self.settings.max_task_bytes:
            raise InvalidInput(
                f"review task {task.task_id} is over CROSSGUARD_REVIEW_MAX_TASK_BYTES"
            )
        with self.engine.begin() as conn:
            if conn.execute(select(tasks.c.task_id).where(tasks.c.task_id == task.task_id)).first():
                return False
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(tasks).values(
                            task_id=task.task_id,
                            content_id=item.id[:256],
                            tenant=item.tenant[:128],
                            surface=item.surface[:64],
                            state="open",
                            tier="reviewer",
                            severity=tri.severity,
                            uncertainty=tri.uncertainty,
                            categories=",".join(tri.categories)[:512],
                            rule=decision.escalation.rule[:256],
                            required_verdicts=required,
                            received_at=now,
                            created_at=created,
                            due_at=due,
                            rank_key=priority.rank_key(created, due, tri.severity, tri.uncertainty),
                            escalation_note="",
                            automated_decision_id=decision.decision_id[:64],
                            automated_action=outcomes.ACTION_NAMES.get(decision.action, ""),
                        )
                    )
            except IntegrityError:  # a concurrent consumer stored it first
                return False
            conn.execute(
                insert(task_content).values(
                    task_id=task.task_id, item=item_bytes, decision=decision_bytes
                )
            )
            if tri.scores:
                conn.execute(
                    insert(task_scores),
                    [
                        {"task_id": task.task_id, "category": c, "score": s, "severity": sev}
                        for c, (s, sev) in tri.scores.items()
                    ],
                )
            self._audit(conn, now, "system", "ingest", task.task_id, f"severity={tri.severity}")
        return True

    def _consensus_needed(self, tri: priority.Triage) -> int:
        for c in tri.categories:
            sev = tri.scores[c][1]
            if (
                c in self.settings.consensus_categories
                and sev >= self.settings.consensus_min_severity
            ):
                return 2
        return 1

    # -- the queue -----------------------------------------------------------------------

    def _tiers(self, user: User) -> list[str]:
        return ["lead", "reviewer"] if user.is_lead else ["reviewer"]

    def _available(self, user: User, now: datetime, tier: str) -> Any:
        return and_(
            tasks.c.state == "open",
            tasks.c.tier == tier,
            or_(tasks.c.lease_until.is_(None), tasks.c.lease_until < now),
            ~exists().where(
                and_(verdicts.c.task_id == tasks.c.task_id, verdicts.c.reviewer_id == user.id)
            ),
            ~exists().where(and_(skips.c.task_id == tasks.c.task_id, skips.c.user_id == user.id)),
        )

    def claim(self, user: User) -> str | None:
        """Lease the next task to `user` (their current one if they hold a lease); None when
        the queue has nothing for them."""
        now = self.clock()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        with self.engine.begin() as conn:
            held = conn.execute(
                select(tasks.c.task_id)
                .where(
                    tasks.c.state == "open",
                    tasks.c.lease_owner == user.id,
                    tasks.c.lease_until >= now,
                )
                .limit(1)
            ).scalar()
            if held is not None:
                return str(held)
            for tier in self._tiers(user):
                query = (
                    select(tasks.c.task_id)
                    .where(self._available(user, now, tier))
                    .order_by(tasks.c.rank_key, tasks.c.task_id)
                    .limit(1)
                )
                if self._pg:
                    query = query.with_for_update(skip_locked=True, of=tasks)
                task_id = conn.execute(query).scalar()
                if task_id is None:
                    continue
                conn.execute(
                    update(tasks)
                    .where(tasks.c.task_id == task_id)
                    .values(lease_owner=user.id, lease_until=until)
                )
                self._audit(conn, now, user.username, "claim", task_id, f"until={until:%H:%M:%S}")
                return str(task_id)
        return None

    def _locked_task(self, conn: Connection, task_id: str) -> Row[Any]:
        query = select(tasks).where(tasks.c.task_id == task_id)
        if self._pg:
            query = query.with_for_update(of=tasks)
        row = conn.execute(query).first()
        if row is None:
            raise TaskNotFound(f"no task {task_id}")
        return row

    def _check_lease(self, row: Row[Any], user: User, now: datetime) -> None:
        if row.state != "open":
            raise Conflict(f"task {row.task_id} is already {row.state}")
        if row.lease_owner != user.id or row.lease_until is None or row.lease_until < now:
            raise LeaseLost(f"you do not hold task {row.task_id}; claim it again")
        if row.tier == "lead" and not user.is_lead:
            raise Forbidden("this task waits for a lead")

    def release(self, user: User, task_id: str) -> None:
        """Give a leased task back without a verdict (it returns to the queue)."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked_task(conn, task_id)
            self._check_lease(row, user, now)
            self._clear_lease(conn, task_id)
            self._audit(conn, now, user.username, "release", task_id)

    @staticmethod
    def _clear_lease(conn: Connection, task_id: str, **values: Any) -> None:
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(lease_owner=None, lease_until=None, **values)
        )

    def skip(self, user: User, task_id: str) -> None:
        """Return the task to the queue; it is not offered to this user again."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked_task(conn, task_id)
            self._check_lease(row, user, now)
            conn.execute(insert(skips).values(task_id=task_id, user_id=user.id, created_at=now))
            self._clear_lease(conn, task_id)
            self._audit(conn, now, user.username, "skip", task_id)

    def escalate(self, user: User, task_id: str, note: str = "") -> None:
        """Send the task to the lead queue."""
        self._check_note(note)
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked_task(conn, task_id)
            self._check_lease(row, user, now)
            if row.tier == "lead":
                raise Conflict("the task is already with the leads")
            self._clear_lease(conn, task_id, tier="lead", escalation_note=note[:512])
            self._audit(conn, now, user.username, "escalate", task_id)

    def _check_note(self, note: str) -> None:
        if len(note) > self.settings.max_note_chars:
            raise BadVerdict(f"note longer than {self.settings.max_note_chars} characters")

    # -- verdicts ------------------------------------------------------------------------

    def submit_verdict(
        self,
        user: User,
        task_id: str,
        action: str,
        categories: Sequence[str] = (),
        note: str = "",
    ) -> VerdictResult:
        if action not in outcomes.ACTIONS:
            raise BadVerdict(f"unknown action {action!r}; one of {', '.join(outcomes.ACTIONS)}")
        try:
            cats = outcomes.parse_categories(categories)
        except ValueError as exc:
            raise BadVerdict(str(exc)) from None
        if action == "block" and not cats:
            raise BadVerdict("a block names at least one category")
        if action == "allow":
            cats = []
        self._check_note(note)
        now = self.clock()
        with self.engine.begin() as conn:
            row = self._locked_task(conn, task_id)
            self._check_lease(row, user, now)
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(verdicts).values(
                            task_id=task_id,
                            reviewer_id=user.id,
                            reviewer=user.username,
                            is_lead=row.tier == "lead",
                            action=action,
                            categories=",".join(cats),
                            note=note,
                            created_at=now,
                        )
                    )
            except IntegrityError:
                raise Conflict("you already gave a verdict on this task") from None
            self._clear_lease(conn, task_id)
            result = self._resolve(conn, row, action, cats, now)
            self._audit(
                conn,
                now,
                user.username,
                "verdict",
                task_id,
                f"action={action} final={result.final} to_lead={result.to_lead}",
            )
        return result

    def _resolve(
        self, conn: Connection, row: Row[Any], action: str, cats: list[str], now: datetime
    ) -> VerdictResult:
        if row.tier == "lead":
            given = conn.execute(
                select(func.count()).where(
                    verdicts.c.task_id == row.task_id, verdicts.c.is_lead.is_(False)
                )
            ).scalar_one()
            resolution = outcomes.Resolution(action, cats, int(given) + 1, False, True)
            self._finalize(conn, row, resolution, now)
            return VerdictResult(True, action, False)
        given_rows = conn.execute(
            select(verdicts.c.action, verdicts.c.categories).where(
                verdicts.c.task_id == row.task_id, verdicts.c.is_lead.is_(False)
            )
        ).all()
        if len(given_rows) < row.required_verdicts:
            return VerdictResult(False, None, False)
        actions = {r.action for r in given_rows}
        if len(actions) == 1:
            union: set[str] = set()
            for r in given_rows:
                union.update(c for c in r.categories.split(",") if c)
            resolution = outcomes.Resolution(
                action,
                outcomes.parse_categories(sorted(union)),
                len(given_rows),
                len(given_rows) > 1,
                False,
            )
            self._finalize(conn, row, resolution, now)
            return VerdictResult(True, action, False)
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id == row.task_id)
            .values(tier="lead", escalation_note="reviewers disagreed: tie-break")
        )
        return VerdictResult(False, None, True)

    def _finalize(
        self, conn: Connection, row: Row[Any], resolution: outcomes.Resolution, now: datetime
    ) -> None:
        content = conn.execute(
            select(task_content.c.decision).where(task_content.c.task_id == row.task_id)
        ).first()
        under_review = decision_pb2.ModerationDecision()
        if content is not None:
            under_review.ParseFromString(content.decision)
        else:  # content expired under retention: the decision still closes the loop
            under_review.decision_id = row.automated_decision_id
            under_review.content_id = row.content_id
            under_review.tenant = row.tenant
            under_review.surface = row.surface
        final = outcomes.final_decision(
            row.task_id, under_review, resolution, now, self.policies.current()
        )
        fb = outcomes.feedback(row.task_id, under_review, resolution, row.appeal_of, now)
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id == row.task_id)
            .values(
                state="decided",
                final_action=resolution.action,
                final_categories=",".join(resolution.categories),
                final_decision_id=final.decision_id,
                decided_at=now,
                lease_owner=None,
                lease_until=None,
            )
        )
        conn.execute(
            insert(outbox),
            [
                {
                    "task_id": row.task_id,
                    "kind": "decision",
                    "key": row.content_id,
                    "payload": final.SerializeToString(),
                    "created_at": now,
                },
                {
                    "task_id": row.task_id,
                    "kind": "feedback",
                    "key": row.content_id,
                    "payload": fb.SerializeToString(),
                    "created_at": now,
                },
            ],
        )

    # -- appeals -------------------------------------------------------------------------

    def appeal(self, user: User, content_id: str, reason: str = "") -> str:
        """Re-open the latest decided review of `content_id` as a new task carrying the
        decision it appeals; its earlier reviewers are not offered it again."""
        if not user.is_lead:
            raise Forbidden("appeals are opened by leads and admins")
        self._check_note(reason)
        now = self.clock()
        with self.engine.begin() as conn:
            original = conn.execute(
                select(tasks)
                .where(tasks.c.content_id == content_id, tasks.c.state == "decided")
                .order_by(tasks.c.decided_at.desc())
                .limit(1)
            ).first()
            if original is None:
                raise TaskNotFound(f"no decided review for content {content_id}")
            pending = conn.execute(
                select(tasks.c.task_id).where(
                    tasks.c.content_id == content_id, tasks.c.state == "open"
                )
            ).first()
            if pending is not None:
                raise Conflict(f"content {content_id} is already in the queue")
            content = conn.execute(
                select(task_content.c.item).where(task_content.c.task_id == original.task_id)
            ).first()
            decided = conn.execute(
                select(outbox.c.payload).where(
                    outbox.c.task_id == original.task_id, outbox.c.kind == "decision"
                )
            ).scalar()
            if content is None or decided is None:
                raise InvalidInput("the content of that review has expired (retention)")
            new_id = str(uuid.uuid5(APPEAL_NAMESPACE, f"{original.task_id}\n{now.isoformat()}"))
            due = now + timedelta(minutes=self.settings.default_sla_minutes)
            conn.execute(
                insert(tasks).values(
                    task_id=new_id,
                    content_id=original.content_id,
                    tenant=original.tenant,
                    surface=original.surface,
                    state="open",
                    tier="reviewer",
                    severity=original.severity,
                    uncertainty=original.uncertainty,
                    categories=original.categories,
                    rule="appeal",
                    required_verdicts=original.required_verdicts,
                    received_at=now,
                    created_at=now,
                    due_at=due,
                    rank_key=priority.rank_key(now, due, original.severity, original.uncertainty),
                    escalation_note=reason[:512],
                    automated_decision_id=original.final_decision_id or "",
                    automated_action=original.final_action or "",
                    appeal_of=original.task_id,
                )
            )
            conn.execute(
                insert(task_content).values(task_id=new_id, item=content.item, decision=decided)
            )
            conn.execute(
                insert(task_scores).from_select(
                    ["task_id", "category", "score", "severity"],
                    select(
                        literal(new_id, task_scores.c.task_id.type),
                        task_scores.c.category,
                        task_scores.c.score,
                        task_scores.c.severity,
                    ).where(task_scores.c.task_id == original.task_id),
                )
            )
            earlier = conn.execute(
                select(verdicts.c.reviewer_id).where(verdicts.c.task_id == original.task_id)
            ).scalars()
            for reviewer_id in set(earlier):
                conn.execute(
                    insert(skips).values(task_id=new_id, user_id=reviewer_id, created_at=now)
                )
            self._audit(conn, now, user.username, "appeal", new_id, f"of={original.task_id}")
        return new_id

    # -- reading -------------------------------------------------------------------------

    def view(self, user: User, task_id: str, *, audit: bool = True) -> TaskView:
        """A task with its content; audited as a view. Reviewers see only tasks they hold or
        have judged; leads see every task."""
        now = self.clock()
        with self.engine.begin() as conn:
            row = conn.execute(select(tasks).where(tasks.c.task_id == task_id)).first()
            if row is None:
                raise TaskNotFound(f"no task {task_id}")
            given = conn.execute(
                select(verdicts).where(verdicts.c.task_id == task_id).order_by(verdicts.c.id)
            ).all()
            holds = row.lease_owner == user.id and row.lease_until and row.lease_until >= now
            judged = any(v.reviewer_id == user.id for v in given)
            if not (user.is_lead or holds or judged):
                raise TaskNotFound(f"no task {task_id}")
            content = conn.execute(
                select(task_content).where(task_content.c.task_id == task_id)
            ).first()
            if audit:
                self._audit(conn, now, user.username, "view", task_id)
        item = decision = None
        if content is not None:
            item = content_pb2.ContentItem.FromString(content.item)
            decision = decision_pb2.ModerationDecision.FromString(content.decision)
        return TaskView(row, item, decision, list(given))

    def queue(self, user: User, limit: int = 50) -> list[Row[Any]]:
        """Open tasks this user could be given, in queue order (plus the one they hold)."""
        now = self.clock()
        with self.engine.begin() as conn:
            rows: list[Row[Any]] = []
            for tier in self._tiers(user):
                rows += conn.execute(
                    select(tasks)
                    .where(
                        or_(
                            self._available(user, now, tier),
                            and_(
                                tasks.c.tier == tier,
                                tasks.c.state == "open",
                                tasks.c.lease_owner == user.id,
                                tasks.c.lease_until >= now,
                            ),
                        )
                    )
                    .order_by(tasks.c.rank_key, tasks.c.task_id)
                    .limit(limit)
                ).all()
            return rows[:limit]

    # -- outbox --------------------------------------------------------------------------

    def unsent(self, limit: int = 100) -> list[OutboxRecord]:
        with self.engine.begin() as conn:
            return self._unsent(conn, limit)

    def _unsent(self, conn: Connection, limit: int) -> list[OutboxRecord]:
        query = (
            select(outbox.c.id, outbox.c.kind, outbox.c.key, outbox.c.payload)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if self._pg:  # replicas publish disjoint rows
            query = query.with_for_update(skip_locked=True, of=outbox)
        return [OutboxRecord(r.id, r.kind, r.key, r.payload or b"") for r in conn.execute(query)]

    def publish_unsent(self, send: Callable[[list[OutboxRecord]], None], limit: int = 100) -> int:
        """Hand up to `limit` unsent records to `send` (which returns once the broker has
        them) and mark them sent, holding their row locks meanwhile so that another replica
        skips them. A crash before the commit re-sends them later (same records)."""
        with self.engine.begin() as conn:
            records = self._unsent(conn, limit)
            if records:
                send(records)
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_([r.id for r in records]))
                    .values(sent_at=self.clock())
                )
        return len(records)

    def mark_sent(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(outbox).where(outbox.c.id.in_(list(ids))).values(sent_at=self.clock())
            )

    # -- retention -----------------------------------------------------------------------

    def purge_expired(self) -> int:
        """Delete content and media references received longer ago than the retention
        setting; open tasks whose content expired leave the queue (state "expired").
        Returns the number of tasks purged."""
        days = self.settings.retention_days
        if days <= 0:
            return 0
        now = self.clock()
        cutoff = now - timedelta(days=days)
        with self.engine.begin() as conn:
            ids = list(
                conn.execute(
                    select(tasks.c.task_id).where(
                        tasks.c.received_at < cutoff, tasks.c.content_deleted_at.is_(None)
                    )
                ).scalars()
            )
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                conn.execute(delete(task_content).where(task_content.c.task_id.in_(chunk)))
                conn.execute(
                    update(outbox)
                    .where(outbox.c.task_id.in_(chunk), outbox.c.sent_at.is_not(None))
                    .values(payload=None)
                )
                # Notes may quote the content: they go too.
                conn.execute(update(verdicts).where(verdicts.c.task_id.in_(chunk)).values(note=""))
                conn.execute(
                    update(tasks)
                    .where(tasks.c.task_id.in_(chunk))
                    .values(content_deleted_at=now, escalation_note="")
                )
                conn.execute(
                    update(tasks)
                    .where(tasks.c.task_id.in_(chunk), tasks.c.state == "open")
                    .values(state="expired", lease_owner=None, lease_until=None)
                )
            if ids:
                self._audit(conn, now, "system", "retention", None, f"tasks={len(ids)}")
        return len(ids)
