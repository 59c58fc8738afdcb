"""Many reviewers at once: on a real PostgreSQL, 12 concurrent reviewers (threads, each with
its own connections) drain 1,000 tasks; on the embedded SQLite store, 4 reviewers drain 150.
No task is leased to two reviewers, no verdict is lost, and exactly one final decision per task
reaches crossguard.decisions.v1 on the real broker."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from argon2 import PasswordHasher

from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics
from crossguard.pipeline.io import iter_records
from crossguard.review.auth import Accounts
from crossguard.review.db import make_engine, migrate
from crossguard.review.kafka_io import OutboxPublisher
from crossguard.review.schema import audit_log, outbox, tasks, verdicts
from crossguard.review.settings import ReviewSettings
from crossguard.review.store import ReviewStore, User
from crossguard.v1 import decision_pb2

from .conftest import DatabaseFactory
from .review_tasks import make_task

pytestmark = pytest.mark.integration

SIZES = {"postgresql": (1000, 12), "sqlite": (150, 4)}  # tasks, reviewers


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_concurrent_reviewers_never_share_a_task_or_lose_a_verdict(
    backend: str, postgres_database: DatabaseFactory, kafka: KafkaSettings, tmp_path: Path
) -> None:
    n_tasks, n_reviewers = SIZES[backend]
    url = postgres_database() if backend == "postgresql" else f"sqlite:///{tmp_path}/r.db"
    engine = make_engine(url, pool_size=n_reviewers + 2)
    migrate(engine)
    store = ReviewStore(engine, ReviewSettings(lease_seconds=300))
    accounts = Accounts(store, PasswordHasher(time_cost=1, memory_cost=1024))
    reviewers = [
        User(accounts.create_user(f"r{i}", "correct horse", "reviewer"), f"r{i}", "reviewer")
        for i in range(n_reviewers)
    ]
    start = datetime.now(UTC) - timedelta(hours=1)
    for n in range(n_tasks):
        store.ingest(make_task(n, created=start + timedelta(seconds=n)))

    claims: list[tuple[str, str]] = []  # (task, reviewer), every successful claim
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start_line = threading.Barrier(n_reviewers, timeout=60)
    # Every reviewer holds a lease at the same moment before anyone submits: the leases held
    # together must be distinct, and the work is shared however the scheduler favours threads
    # (on SQLite one writer can otherwise win every claim).
    all_hold_one = threading.Barrier(n_reviewers, timeout=60)

    def review(user: User) -> None:
        try:
            start_line.wait()
            first = True
            while True:
                task_id = store.claim(user)
                if first:
                    all_hold_one.wait()
                    first = False
                if task_id is None:
                    return
                with lock:
                    claims.append((task_id, user.username))
                action = "block" if hash(task_id) % 2 else "allow"
                result = store.submit_verdict(user, task_id, action, ["harassment"])
                with lock:
                    results.append((task_id, result.final))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)

    leased = Counter(task for task, _ in claims)
    assert len(leased) == n_tasks
    assert max(leased.values()) == 1, "a task was leased twice"
    assert len({who for _, who in claims}) == n_reviewers  # the work really was shared
    assert all(final for _, final in results) and len(results) == n_tasks
    with engine.connect() as conn:
        count = conn.execute(sqlalchemy.select(sqlalchemy.func.count()).select_from(verdicts))
        assert count.scalar() == n_tasks
        decided = conn.execute(
            sqlalchemy.select(sqlalchemy.func.count()).where(tasks.c.state == "decided")
        ).scalar()
        assert decided == n_tasks
        audited = conn.execute(
            sqlalchemy.select(audit_log.c.task_id).where(audit_log.c.action == "claim")
        ).scalars()
        assert max(Counter(audited).values()) == 1
        finals = conn.execute(
            sqlalchemy.select(outbox.c.task_id).where(outbox.c.kind == "decision")
        ).scalars()
        assert sorted(Counter(finals).values()) == [1] * n_tasks

    async def publish_and_read() -> Counter[str]:
        publisher = OutboxPublisher(store, kafka, 0.1)
        await publisher.producer.start()
        try:
            assert await publisher.flush() == 2 * n_tasks  # decision + feedback per task
            assert await publisher.flush() == 0  # nothing twice
        finally:
            await publisher.producer.stop()
        seen: Counter[str] = Counter()
        topic = Topics.from_settings(kafka).decisions
        async for record in iter_records(
            kafka.bootstrap_servers, topic, kafka=kafka, idle_timeout_s=3.0
        ):
            decision = decision_pb2.ModerationDecision.FromString(record.value or b"")
            assert decision.decided_by == "review" and decision.final
            seen[decision.content_id] += 1
        return seen

    on_topic = asyncio.run(publish_and_read())
    assert len(on_topic) == n_tasks
    assert set(on_topic.values()) == {1}, "a final decision was published twice"
    engine.dispose()
