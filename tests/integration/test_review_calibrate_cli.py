"""`crossguard calibrate` over a real review store (SQLite file) filled through the store's
own verdict path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from crossguard.cli.main import cli
from crossguard.review.auth import Accounts
from crossguard.review.db import make_engine, migrate
from crossguard.review.settings import ReviewSettings
from crossguard.review.store import ReviewStore, User

from .review_tasks import make_task

pytestmark = pytest.mark.integration


def test_calibrate_suggests_thresholds_from_verdicts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/review.db"
    engine = make_engine(url)
    migrate(engine)
    store = ReviewStore(engine, ReviewSettings())
    accounts = Accounts(store, PasswordHasher(time_cost=1, memory_cost=1024))
    lead = User(accounts.create_user("lee", "correct horse", "lead"), "lee", "lead")
    # Reviewers confirm violence from 0.6 up (one false alarm at 0.65); a "violence/graphic"
    # block also counts for its parent.
    for n, pct in enumerate(range(30, 100, 2)):
        score = pct / 100
        store.ingest(make_task(n, scores={"violence": (score, 1)}))
        assert store.claim(lead) == f"task-{n}"
        harmful = score >= 0.6 and pct != 66
        category = "violence/graphic" if pct == 90 else "violence"
        store.submit_verdict(lead, f"task-{n}", "block" if harmful else "allow", [category])
    engine.dispose()

    result = CliRunner().invoke(
        cli, ["calibrate", "--database-url", url, "--json", "--target-precision", "1.0"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (violence,) = [s for s in report["suggestions"] if s["category"] == "violence"]
    assert violence["samples"] == 35 and violence["positives"] == 19
    assert violence["block"] == 0.68
    assert violence["escalate"] is not None and 0.5 <= violence["escalate"] <= 0.6
    assert violence["current_escalate"] == 0.63  # the bundled policy's, shown, not changed
    assert any(p["threshold"] == 0.68 and p["precision"] == 1.0 for p in violence["table"])

    table = CliRunner().invoke(cli, ["calibrate", "--database-url", url])
    assert table.exit_code == 0, table.output
    assert "suggested block" in table.output and "Nothing is applied" in table.output
