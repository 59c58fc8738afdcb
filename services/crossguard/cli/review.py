"""`crossguard calibrate` and `crossguard review add-user` (the review store's commands)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from crossguard.review.calibrate import Suggestion

console = Console()


def _engine(database_url: str | None) -> Engine:
    from crossguard.review.db import make_engine, migrate
    from crossguard.review.settings import ReviewSettings

    url = database_url or ReviewSettings().database_url.get_secret_value()
    engine = make_engine(url)
    migrate(engine)
    return engine


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _table(s: Suggestion) -> Table:
    title = (
        f"{s.category}: {s.samples} reviewed, {s.positives} confirmed · suggest escalate "
        f"{_fmt(s.escalate)} (now {_fmt(s.current_escalate)}), block {_fmt(s.block)} "
        f"(now {_fmt(s.current_block)})"
    )
    table = Table(title=title, title_justify="left")
    for col in ("threshold", "precision", "recall", "flagged", ""):
        table.add_column(col, justify="right" if col else "left")
    for p in s.table:
        marks = []
        if p.threshold == s.escalate:
            marks.append("← suggested escalate")
        if p.threshold == s.block:
            marks.append("← suggested block")
        if p.threshold in (s.current_escalate, s.current_block):
            marks.append("(current)")
        table.add_row(
            f"{p.threshold:.3f}",
            _fmt(p.precision),
            f"{p.recall:.3f}",
            str(p.flagged),
            " ".join(marks),
        )
    return table


def run_calibrate(
    database_url: str | None,
    policy_path: Path | None,
    target_recall: float,
    target_precision: float,
    min_samples: int,
    as_json: bool,
) -> int:
    from crossguard.core.taxonomy import Category
    from crossguard.policy.loader import default_policy, load_policy
    from crossguard.review.calibrate import calibrate

    policy = load_policy(policy_path) if policy_path else default_policy()
    current: dict[str, tuple[float | None, float | None]] = {}
    for category in Category:
        t = policy.thresholds(category)
        current[category.value] = (t.escalate, t.block)
    engine = _engine(database_url)
    try:
        suggestions, skipped = calibrate(
            engine,
            current=current,
            target_recall=target_recall,
            target_precision=target_precision,
            min_samples=min_samples,
        )
    finally:
        engine.dispose()
    if as_json:
        print(
            json.dumps(
                {
                    "policy_version": policy.version,
                    "suggestions": [asdict(s) for s in suggestions],
                    "skipped": [{"category": c, "samples": n} for c, n in skipped],
                },
                indent=2,
            )
        )
        return 0
    console.print(
        f"Suggestions against policy [bold]{policy.version}[/] (targets: escalate recall "
        f"≥ {target_recall}, block precision ≥ {target_precision}). Nothing is applied: edit "
        "the policy file to adopt a suggestion."
    )
    for s in suggestions:
        console.print(_table(s))
    if skipped:
        console.print(
            "too few verdicts (or only one label) for: "
            + ", ".join(f"{c} ({n})" for c, n in skipped)
            + f"; need {min_samples} with both outcomes"
        )
    if not suggestions:
        console.print("no category has enough reviewed tasks yet")
    return 0


def run_add_user(database_url: str | None, username: str, role: str, password: str) -> int:
    from crossguard.review.auth import Accounts
    from crossguard.review.settings import ReviewSettings
    from crossguard.review.store import ReviewStore

    engine = _engine(database_url)
    try:
        Accounts(ReviewStore(engine, ReviewSettings())).create_user(
            username, password, role, actor="cli"
        )
    finally:
        engine.dispose()
    console.print(f"created {role} {username}")
    return 0
