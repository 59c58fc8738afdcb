"""The review service's Kafka side: tasks in from crossguard.review.v1, final decisions and
feedback out (the outbox) to crossguard.decisions.v1 and crossguard.feedback.v1.

At-least-once both ways: offsets are committed after the tasks are stored (ingest is
idempotent on task id), and an outbox row is marked sent after the broker acknowledged it (a
crash in between re-sends the same record: same key, same decision id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from sqlalchemy.exc import InterfaceError, OperationalError

from crossguard.core.errors import CrossguardError
from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics, client_kwargs
from crossguard.review.store import OutboxRecord, ReviewStore
from crossguard.v1 import review_pb2

log = logging.getLogger(__name__)


class TaskConsumer:
    def __init__(self, store: ReviewStore, kafka: KafkaSettings, group: str) -> None:
        self.store = store
        self.kafka = kafka
        self.topic = Topics.from_settings(kafka).review
        self.consumer = AIOKafkaConsumer(
            self.topic,
            **client_kwargs(kafka),
            group_id=kafka.topic_prefix + group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=max(100, kafka.session_timeout_ms // 3),
        )
        self.started = asyncio.Event()

    def _ingest(self, value: bytes | None, offset: int) -> None:
        """Store one record. A record that cannot be stored is logged and skipped (its offset
        is committed): only a database connectivity error propagates, so run() retries it
        instead of blocking the partition on one bad record forever."""
        try:
            task = review_pb2.ReviewTask.FromString(value or b"")
        except DecodeError:
            log.error("review record is not a ReviewTask", extra={"offset": offset})
            return
        try:
            stored = self.store.ingest(task)
        except CrossguardError as exc:
            # Ids and reasons only: a task's content never reaches the logs.
            log.error(
                "review task rejected",
                extra={"task_id": task.task_id[:64], "offset": offset, "reason": str(exc)},
            )
            return
        except (OperationalError, InterfaceError):
            raise  # the database is unreachable: retried from the last commit
        except Exception:
            log.exception(
                "review task could not be stored; skipped",
                extra={"task_id": task.task_id[:64], "offset": offset},
            )
            return
        if stored:
            log.info("review task stored", extra={"task_id": task.task_id})

    async def run(self) -> None:
        await self.consumer.start()
        try:
            while True:
                batch = await self.consumer.getmany(timeout_ms=500, max_records=100)
                if self.consumer.assignment():
                    self.started.set()
                if not batch:
                    continue
                try:
                    for records in batch.values():
                        for record in records:
                            await asyncio.to_thread(self._ingest, record.value, record.offset)
                except (OperationalError, InterfaceError):
                    # The store is unreachable: nothing is committed; read the batch again from
                    # the last commit once it is back.
                    log.exception("storing review tasks failed; retrying from the last commit")
                    await asyncio.sleep(1.0)
                    for tp in batch:
                        committed = await self.consumer.committed(tp)
                        if committed is None:  # ingest is idempotent: re-reading is safe
                            await self.consumer.seek_to_beginning(tp)
                        else:
                            self.consumer.seek(tp, committed)
                    continue
                try:
                    await self.consumer.commit()
                except KafkaError as exc:
                    # CommitFailedError during a rebalance (or a broker hiccup): the records are
                    # stored, and ingest is idempotent, so whoever owns the partitions next
                    # re-reads them harmlessly; keep consuming.
                    log.warning(
                        "offset commit failed; records will be re-read",
                        extra={"reason": f"{type(exc).__name__}: {exc}"[:300]},
                    )
        finally:
            await self.consumer.stop()


class OutboxPublisher:
    def __init__(self, store: ReviewStore, kafka: KafkaSettings, interval_s: float) -> None:
        self.store = store
        self.kafka = kafka
        self.topics = Topics.from_settings(kafka)
        self.interval_s = interval_s
        self.wake = asyncio.Event()
        self.producer = AIOKafkaProducer(
            **client_kwargs(kafka),
            acks="all",
            max_batch_size=kafka.producer_max_batch_size,
            enable_idempotence=False,  # tansu: aiokafka's InitProducerId is not supported
        )

    async def _send(self, records: list[OutboxRecord]) -> None:
        futures = []
        for rec in records:
            topic = self.topics.decisions if rec.kind == "decision" else self.topics.feedback
            futures.append(await self.producer.send(topic, value=rec.payload, key=rec.key.encode()))
        await asyncio.gather(*futures)

    async def flush(self) -> int:
        """Send every unsent outbox record; returns how many were sent."""
        loop = asyncio.get_running_loop()

        def send(records: list[OutboxRecord]) -> None:
            # Called in the store's worker thread inside its transaction; the producer lives
            # on this loop.
            asyncio.run_coroutine_threadsafe(self._send(records), loop).result()

        sent = 0
        while True:
            n = await asyncio.to_thread(self.store.publish_unsent, send, 100)
            if not n:
                return sent
            sent += n

    async def run(self) -> None:
        await self.producer.start()
        try:
            while True:
                try:
                    sent = await self.flush()
                    if sent:
                        log.info("published final decisions and feedback", extra={"records": sent})
                except Exception:
                    log.exception("outbox publish failed; retrying")
                    await asyncio.sleep(1.0)
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.interval_s)
        finally:
            await self.producer.stop()
