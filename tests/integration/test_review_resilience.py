"""The review service's loops survive what used to end or block them: a record with an
out-of-range timestamp (skipped and logged with its task id, not retried forever), a failed
offset commit during a rebalance (consumption goes on), and a database error during a
retention sweep (the next sweep runs). Real broker, real SQLite store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from aiokafka.errors import CommitFailedError

from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics
from crossguard.pipeline.io import RawRecord, publish_raw
from crossguard.review.db import make_engine, migrate
from crossguard.review.kafka_io import TaskConsumer
from crossguard.review.schema import tasks
from crossguard.review.service import retention_loop
from crossguard.review.settings import ReviewSettings
from crossguard.review.store import ReviewStore

from .review_tasks import make_task

pytestmark = pytest.mark.integration


def _stored(store: ReviewStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sqlalchemy.select(tasks.c.task_id)).scalars())


async def _until(check: Callable[[], bool], guard: asyncio.Task[None], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await asyncio.to_thread(check):
        if guard.done():
            raise AssertionError(f"the loop ended: {guard.exception()!r}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.2)


async def test_consumer_skips_a_bad_record_and_survives_a_failed_commit(
    kafka: KafkaSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/review.db")
    migrate(engine)
    store = ReviewStore(engine, ReviewSettings())
    bad = make_task("bad")
    bad.created_at.seconds = 2**62  # out of a datetime's range
    topic = Topics.from_settings(kafka).review
    # One key: the bad record and the good one behind it share a partition.
    records: list[RawRecord] = [(b"c-1", t.SerializeToString(), []) for t in (bad, make_task("ok"))]
    await publish_raw(kafka.bootstrap_servers, records, topic=topic, kafka=kafka)

    consumer = TaskConsumer(store, kafka, "review-resilience")
    real_commit: Callable[..., Awaitable[Any]] = consumer.consumer.commit
    failed: list[bool] = []

    async def commit_failing_once(*args: Any, **kw: Any) -> Any:
        # Fault injection on the broker call only: what a rebalance does to a commit.
        if not failed:
            failed.append(True)
            raise CommitFailedError()
        return await real_commit(*args, **kw)

    consumer.consumer.commit = commit_failing_once
    caplog.set_level(logging.INFO, logger="crossguard.review.kafka_io")
    run = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: "task-ok" in _stored(store), run, 60)
        await _until(lambda: bool(failed), run, 30)
        later: list[RawRecord] = [(b"c-2", make_task("later").SerializeToString(), [])]
        await publish_raw(kafka.bootstrap_servers, later, topic=topic, kafka=kafka)
        await _until(lambda: "task-later" in _stored(store), run, 60)
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        engine.dispose()
    assert _stored(store) == {"task-ok", "task-later"}
    rejected = [r for r in caplog.records if r.getMessage() == "review task rejected"]
    assert [getattr(r, "task_id", None) for r in rejected] == ["task-bad"]
    assert any(r.getMessage().startswith("offset commit failed") for r in caplog.records)


async def test_retention_keeps_sweeping_after_a_database_error(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/review.db")  # not migrated yet: sweeps fail
    now = [datetime.now(UTC)]
    store = ReviewStore(engine, ReviewSettings(retention_days=1), clock=lambda: now[0])
    sweep = asyncio.create_task(retention_loop(store, 0.05))
    try:
        await asyncio.sleep(0.3)  # several failed sweeps ("no such table")
        assert not sweep.done()
        migrate(engine)
        store.ingest(make_task("old", created=now[0]))
        now[0] += timedelta(days=2)

        def purged() -> bool:
            with engine.connect() as conn:
                row = conn.execute(sqlalchemy.select(tasks.c.content_deleted_at)).first()
            return row is not None and row.content_deleted_at is not None

        await _until(purged, sweep, 30)
    finally:
        sweep.cancel()
        await asyncio.gather(sweep, return_exceptions=True)
        engine.dispose()
