"""The faust worker: a thin layer that feeds content records to Processor.process() and
produces what it returns.

At-least-once: an event is acknowledged (so its offset may be committed) only after every
record it produced is acknowledged by the broker; faust also flushes the producer before each
commit. The first decision per (content id, policy version) is kept in a faust table
(pipeline.decision_table) before it is produced, so a crash replays uncommitted items and
they re-emit the stored decision: the same record, never a second, different one. When that
table cannot be written (the broker is down), the item is processed again later, never
dead-lettered: bad input goes to the DLQ, a broker outage does not.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
from pathlib import Path
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.types import StreamT

from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics, ssl_context
from crossguard.pipeline.decision_table import TableDecisionStore
from crossguard.pipeline.kafka_transport import use_fetch_wait_transport
from crossguard.pipeline.process import Processor
from crossguard.pipeline.records import OutRecord
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import RejectCode, Rejection

log = logging.getLogger(__name__)

_SEND_BACKOFF_MAX_S = 30.0


def faust_credentials(kafka: KafkaSettings) -> Any:
    """faust credentials for SSL / SASL (None for PLAINTEXT)."""
    context: ssl.SSLContext | None = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(
    settings: PipelineSettings,
    kafka: KafkaSettings,
    bootstrap: str,
    *,
    processor: Processor | None = None,
    content_partitions: int | None = None,
) -> faust.App:
    """Build the faust app with one agent on the content topic.

    `bootstrap` is the resolved "host:port[,host:port]" (the embedded broker's when
    KafkaSettings.bootstrap_servers is empty). `content_partitions`: the content topic's
    partition count as the broker has it (default: KafkaSettings.partitions); the decision
    table's changelog must have as many.
    """
    topics = Topics.from_settings(kafka)
    session_timeout_s = kafka.session_timeout_ms / 1000.0
    datadir = settings.data_dir or Path(tempfile.mkdtemp(prefix="crossguard-faust-"))
    app = faust.App(
        kafka.topic_prefix + settings.app_id,
        broker=[f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()],
        broker_credentials=faust_credentials(kafka),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=settings.web_enabled,
        web_bind=settings.web_bind,
        web_port=settings.web_port,
        producer_max_batch_size=kafka.producer_max_batch_size,
        # Outputs embed the item (review tasks carry its parts): allow records as large as the
        # largest accepted item plus room for the decision. The broker's limit still applies.
        producer_max_request_size=settings.max_item_bytes + 1024 * 1024,
        producer_acks=-1,
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=max(0.5, session_timeout_s / 10),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        store="memory://",
        datadir=str(datadir),
    )
    # faust hard-codes the worker consumer's fetch wait (1500 ms): make it the setting.
    use_fetch_wait_transport(app, kafka.consumer_fetch_max_wait_ms)
    content = app.topic(topics.content, key_type=bytes, value_type=bytes)
    outputs = {
        "decisions": app.topic(topics.decisions, key_type=bytes, value_type=bytes),
        "review": app.topic(topics.review, key_type=bytes, value_type=bytes),
        "dlq": app.topic(topics.content_dlq, key_type=bytes, value_type=bytes),
    }
    table_store: TableDecisionStore | None = None
    if processor is None:
        if settings.decision_store == "table":
            table_store = TableDecisionStore(
                app,
                partitions=content_partitions or kafka.partitions,
                retention_s=settings.decision_retention_s,
            )
        processor = Processor(settings, store=table_store)
    proc = processor

    async def emit(records: list[OutRecord], content_id: str) -> None:
        """Produce the records and wait for the broker's acks. Transient failures are retried
        (never ack an item whose decision was not produced; retries yield identical records);
        a permanent one (e.g. a record over the broker's size limit) is raised."""
        backoff = 0.2
        while True:
            try:
                pending = [
                    await outputs[r.topic].send(key=r.key, value=r.value, headers=r.headers)
                    for r in records
                ]
                await asyncio.gather(*pending)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if isinstance(exc, KafkaError) and not exc.retriable:
                    raise
                log.exception(
                    "producing outcome failed; retrying", extra={"content_id": content_id}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _SEND_BACKOFF_MAX_S)

    @app.agent(content, concurrency=settings.agent_concurrency, name="moderate")
    async def moderate(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            outcome = await proc.process_until_stored(
                msg.value,
                list(msg.headers or []),
                key=msg.key,
                source=f"{msg.topic}/{msg.partition}/{msg.offset}",
            )
            try:
                await emit(outcome.records, outcome.content_id)
            except KafkaError as exc:
                # Retrying cannot help: dead-letter the original record with the reason.
                log.exception(
                    "outcome cannot be produced", extra={"content_id": outcome.content_id}
                )
                rejection = Rejection(
                    RejectCode.UNPRODUCIBLE,
                    f"outputs could not be produced: {type(exc).__name__}: {exc}",
                    outcome.content_id,
                )
                dead = proc.dead_letter(
                    msg.value,
                    list(msg.headers or []),
                    rejection,
                    key=msg.key,
                    source=f"{msg.topic}/{msg.partition}/{msg.offset}",
                )
                await emit(dead.records, outcome.content_id)

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def observe_lag() -> None:
        consumer = app.consumer
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic != topics.content:
                continue
            position = await consumer.position(tp)
            if position is None:
                continue
            lag[(tp.topic, tp.partition)] = max(0, consumer.highwater(tp) - position)
        proc.metrics.lag.clear()
        proc.metrics.lag.update(lag)

    if table_store is not None:
        store = table_store

        @app.timer(interval=60.0)  # type: ignore[untyped-decorator]
        async def prune_decisions() -> None:
            pruned = store.prune()
            if pruned:
                log.info("decisions past retention pruned", extra={"count": pruned})

    ready = {"announced": False}

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def announce_ready(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
        if not ready["announced"]:
            ready["announced"] = True
            print("READY", flush=True)

    return app
