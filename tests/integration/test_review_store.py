"""The review queue on real databases: PostgreSQL (a fresh database per test) and SQLite.

Ingest idempotence, queue order, leases and their expiry, skip, escalation, two-reviewer
consensus with a lead's tie-break, appeals, the final decision and feedback in the outbox,
retention, the append-only audit log, and the migrations matching the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from argon2 import PasswordHasher

from crossguard.core.errors import InvalidInput
from crossguard.review.auth import Accounts
from crossguard.review.db import make_engine, migrate
from crossguard.review.errors import BadVerdict, Conflict, Forbidden, LeaseLost, TaskNotFound
from crossguard.review.schema import audit_log, metadata, outbox, task_content, tasks
from crossguard.review.settings import ReviewSettings
from crossguard.review.stats import LeadStats
from crossguard.review.store import ReviewStore, User
from crossguard.v1 import decision_pb2, review_pb2, taxonomy_pb2

from .conftest import DatabaseFactory
from .review_tasks import make_task as _make_task

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def make_task(n: int | str, **kw: Any) -> review_pb2.ReviewTask:
    kw.setdefault("created", T0)
    return _make_task(n, **kw)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


StoreFactory = Callable[..., tuple[ReviewStore, Clock]]


@pytest.fixture(params=["postgresql", "sqlite"])
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_database: DatabaseFactory
) -> Iterator[StoreFactory]:
    engines: list[sqlalchemy.Engine] = []

    def make(**settings: object) -> tuple[ReviewStore, Clock]:
        if request.param == "postgresql":
            url = postgres_database()
        else:
            url = f"sqlite:///{tmp_path}/review-{len(engines)}.db"
        engine = make_engine(url)
        engines.append(engine)
        migrate(engine)
        clock = Clock()
        return ReviewStore(engine, ReviewSettings(**settings), clock=clock), clock  # type: ignore[arg-type]

    yield make
    for engine in engines:
        engine.dispose()


def users(store: ReviewStore) -> dict[str, User]:
    accounts = Accounts(store, PasswordHasher(time_cost=1, memory_cost=1024))
    out = {}
    for name, role in (
        ("ann", "reviewer"),
        ("bob", "reviewer"),
        ("cat", "reviewer"),
        ("lee", "lead"),
    ):
        out[name] = User(accounts.create_user(name, "correct horse", role), name, role)
    return out


def outbox_rows(store: ReviewStore, kind: str) -> list[sqlalchemy.Row[tuple[str, bytes]]]:
    with store.engine.connect() as conn:
        return list(
            conn.execute(
                sqlalchemy.select(outbox.c.task_id, outbox.c.payload).where(outbox.c.kind == kind)
            ).all()
        )


def test_migrations_match_schema_and_audit_is_append_only(make_store: StoreFactory) -> None:
    store, _ = make_store()
    migrate(store.engine)  # twice: idempotent
    with store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    store.audit("ann", "view", "task-1")
    for change in (
        sqlalchemy.update(audit_log).values(actor="mallory"),
        sqlalchemy.delete(audit_log),
    ):
        with (
            pytest.raises(sqlalchemy.exc.DBAPIError, match="append-only"),
            store.engine.begin() as c,
        ):
            c.execute(change)


def test_ingest_is_idempotent_and_keeps_media_references_only(make_store: StoreFactory) -> None:
    store, _ = make_store()
    task = make_task(1, inline_media=b"\x89PNG-bytes")
    assert store.ingest(task) is True
    assert store.ingest(task) is False
    with store.engine.connect() as conn:
        assert (
            conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(tasks)).scalar()
            == 1
        )
        stored = conn.execute(sqlalchemy.select(task_content.c.item)).scalar_one()
    assert b"PNG-bytes" not in stored
    store.ingest(make_task(2, media_uri="file:///media/x.png"))
    lead = User(
        Accounts(store, PasswordHasher(time_cost=1, memory_cost=1024)).create_user(
            "lee", "correct horse", "lead"
        ),
        "lee",
        "lead",
    )
    view = store.view(lead, "task-2")
    assert view.item is not None
    assert view.item.parts[1].media.uri == "file:///media/x.png"


def test_queue_order_follows_sla_severity_and_uncertainty(make_store: StoreFactory) -> None:
    store, _ = make_store(default_sla_minutes=1440, sla_minutes={"sexual/minors": 60})
    # Older, low severity, confident; newer but zero-tolerance category; medium.
    store.ingest(make_task("old-spam", scores={"spam": (0.95, 1)}, created=T0 - timedelta(hours=3)))
    store.ingest(make_task("minors", scores={"sexual/minors": (0.6, 2)}, created=T0))
    store.ingest(make_task("harass", scores={"harassment": (0.5, 1)}, created=T0))
    u = users(store)
    order = []
    for name in ("ann", "bob", "cat"):
        task_id = store.claim(u[name])
        assert task_id is not None
        order.append(task_id)
    assert order == ["task-minors", "task-harass", "task-old-spam"]
    with store.engine.connect() as conn:
        due = conn.execute(
            sqlalchemy.select(tasks.c.due_at).where(tasks.c.task_id == "task-minors")
        ).scalar_one()
    assert due == T0 + timedelta(minutes=60)


def test_lease_is_exclusive_and_expiry_returns_the_task(make_store: StoreFactory) -> None:
    store, clock = make_store(lease_seconds=60)
    store.ingest(make_task(1))
    u = users(store)
    assert store.claim(u["ann"]) == "task-1"
    assert store.claim(u["ann"]) == "task-1"  # her lease, again
    assert store.claim(u["bob"]) is None
    clock.advance(seconds=61)
    assert store.claim(u["bob"]) == "task-1"
    with pytest.raises(LeaseLost):
        store.submit_verdict(u["ann"], "task-1", "allow")
    with pytest.raises(TaskNotFound):  # no longer hers to see
        store.view(u["ann"], "task-1")
    result = store.submit_verdict(u["bob"], "task-1", "allow")
    assert result.final and result.action == "allow"


def test_skip_and_escalate(make_store: StoreFactory) -> None:
    store, _ = make_store()
    store.ingest(make_task(1))
    store.ingest(make_task(2, created=T0 + timedelta(hours=1)))
    u = users(store)
    assert store.claim(u["ann"]) == "task-1"
    store.skip(u["ann"], "task-1")
    assert store.claim(u["ann"]) == "task-2"  # task-1 is never offered to her again
    store.escalate(u["ann"], "task-2", "unsure about context")
    assert store.claim(u["ann"]) is None
    assert store.claim(u["bob"]) == "task-1"
    assert store.claim(u["lee"]) == "task-2"  # leads take their queue first
    with pytest.raises(Forbidden):
        store.appeal(u["bob"], "c-1")
    result = store.submit_verdict(u["lee"], "task-2", "block", ["harassment"])
    assert result.final
    (row,) = outbox_rows(store, "decision")
    final = decision_pb2.ModerationDecision.FromString(row.payload)
    assert final.action == taxonomy_pb2.ACTION_BLOCK
    assert final.decided_by == "review" and final.final
    assert final.supersedes_decision_id == "auto-2"
    assert final.content_id == "c-2"
    assert final.applied_action == taxonomy_pb2.ACTION_BLOCK
    # The statement of reasons of a human decision (DSA Art. 17), from the policy's section.
    sor = final.statement_of_reasons
    assert sor.automated_decision == "AUTOMATED_DECISION_PARTIALLY" and not sor.provisional
    assert sor.puid == final.decision_id and sor.restrictions
    assert list(sor.categories) == [taxonomy_pb2.CATEGORY_HARASSMENT]
    assert "lead decided block for harassment" in sor.facts.replace("a lead", "lead")


def test_consensus_needs_two_agreeing_reviewers_and_a_lead_breaks_ties(
    make_store: StoreFactory,
) -> None:
    store, _ = make_store()
    severe = {"hate/threatening": (0.7, 3)}
    store.ingest(make_task("agree", scores=severe))
    store.ingest(make_task("split", scores=severe, created=T0 + timedelta(minutes=1)))
    u = users(store)
    # Agreeing pair.
    assert store.claim(u["ann"]) == "task-agree"
    assert not store.submit_verdict(u["ann"], "task-agree", "block", ["hate/threatening"]).final
    assert store.claim(u["ann"]) == "task-split"  # not task-agree again: she has judged it
    assert store.claim(u["bob"]) == "task-agree"
    result = store.submit_verdict(u["bob"], "task-agree", "block", ["hate"])
    assert result.final and result.action == "block"
    # Split pair → lead.
    assert not store.submit_verdict(u["ann"], "task-split", "block", ["hate/threatening"]).final
    assert store.claim(u["cat"]) == "task-split"
    result = store.submit_verdict(u["cat"], "task-split", "allow")
    assert result.to_lead and not result.final
    assert store.claim(u["bob"]) is None  # in the lead queue now
    assert store.claim(u["lee"]) == "task-split"
    assert store.submit_verdict(u["lee"], "task-split", "allow").final
    feedback = {
        r.task_id: review_pb2.ReviewFeedback.FromString(r.payload)
        for r in outbox_rows(store, "feedback")
    }
    assert feedback["task-agree"].unanimous and feedback["task-agree"].verdicts == 2
    assert {taxonomy_pb2.Category.Name(c) for c in feedback["task-agree"].categories} == {
        "CATEGORY_HATE",
        "CATEGORY_HATE_THREATENING",
    }
    assert feedback["task-split"].lead_decided and not feedback["task-split"].unanimous
    assert feedback["task-split"].action == taxonomy_pb2.ACTION_ALLOW
    assert len(outbox_rows(store, "decision")) == 2


def test_appeal_reenters_with_the_original_decision(make_store: StoreFactory) -> None:
    store, clock = make_store()
    store.ingest(make_task(1))
    u = users(store)
    store.claim(u["ann"])
    store.submit_verdict(u["ann"], "task-1", "block", ["harassment"])
    clock.advance(hours=2)
    appeal_id = store.appeal(u["lee"], "c-1", "author says it was a quote")
    with pytest.raises(Conflict, match="already in the queue"):  # a second click
        store.appeal(u["lee"], "c-1")
    assert store.claim(u["ann"]) is None  # a fresh pair of eyes
    assert store.claim(u["bob"]) == appeal_id
    view = store.view(u["bob"], appeal_id)
    assert view.decision is not None
    assert view.decision.decided_by == "review"
    assert view.decision.action == taxonomy_pb2.ACTION_BLOCK
    assert view.row.appeal_of == "task-1"
    store.submit_verdict(u["bob"], appeal_id, "allow")
    finals = {
        r.task_id: decision_pb2.ModerationDecision.FromString(r.payload)
        for r in outbox_rows(store, "decision")
    }
    assert finals[appeal_id].supersedes_decision_id == finals["task-1"].decision_id
    assert finals[appeal_id].action == taxonomy_pb2.ACTION_ALLOW


def test_bad_verdicts_are_refused(make_store: StoreFactory) -> None:
    store, _ = make_store(max_note_chars=10)
    store.ingest(make_task(1))
    u = users(store)
    store.claim(u["ann"])
    with pytest.raises(BadVerdict, match="unknown action"):
        store.submit_verdict(u["ann"], "task-1", "nuke")
    with pytest.raises(BadVerdict, match="at least one category"):
        store.submit_verdict(u["ann"], "task-1", "block")
    with pytest.raises(BadVerdict, match="unknown category"):
        store.submit_verdict(u["ann"], "task-1", "block", ["rudeness"])
    with pytest.raises(BadVerdict, match="note longer"):
        store.submit_verdict(u["ann"], "task-1", "allow", note="x" * 11)
    assert store.submit_verdict(u["ann"], "task-1", "allow").final


def test_retention_deletes_content_and_media_references(make_store: StoreFactory) -> None:
    store, clock = make_store(retention_days=30)
    store.ingest(make_task(1, media_uri="file:///media/a.png"))
    store.ingest(make_task(2))
    u = users(store)
    store.claim(u["ann"])
    store.submit_verdict(u["ann"], "task-1", "block", ["harassment"], note="quotes the post")
    store.mark_sent([r.id for r in store.unsent()])
    clock.advance(days=29)
    assert store.purge_expired() == 0
    clock.advance(days=2)
    assert store.purge_expired() == 2
    view = store.view(u["lee"], "task-1")
    assert view.item is None and view.decision is None
    assert view.verdicts[0].note == ""
    assert view.row.final_action == "block"  # the verdict itself stays
    with store.engine.connect() as conn:
        assert conn.execute(sqlalchemy.select(task_content)).first() is None
        assert conn.execute(sqlalchemy.select(outbox.c.payload)).scalars().all() == [None, None]
        state = conn.execute(
            sqlalchemy.select(tasks.c.state).where(tasks.c.task_id == "task-2")
        ).scalar_one()
    assert state == "expired"
    actions = [a.action for a in LeadStats(store.engine, clock).audit_entries()]
    assert "retention" in actions and "verdict" in actions and "view" in actions


@pytest.mark.parametrize("field", ["created_at", "sla_deadline"])
def test_out_of_range_timestamps_are_invalid_input(make_store: StoreFactory, field: str) -> None:
    # protobuf accepts any int64 seconds; a datetime ends at year 9999. Such a record is bad
    # input (skipped by the consumer), not an unexpected error that blocks its partition.
    store, _ = make_store()
    task = make_task("far")
    getattr(task, field).seconds = 2**62
    with pytest.raises(InvalidInput, match=f"out-of-range {field}"):
        store.ingest(task)
    task.created_at.seconds = 253402300799  # 9999-12-31T23:59:59: the SLA window overflows
    task.ClearField("sla_deadline")
    with pytest.raises(InvalidInput, match="out-of-range created_at"):
        store.ingest(task)
    assert store.ingest(make_task("ok"))
