"""Client-side Kafka I/O for the CLI: publish items, collect their decisions."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry import trace

from crossguard.core.settings import KafkaSettings
from crossguard.core.telemetry import inject_kafka_headers
from crossguard.core.topics import Topics, client_kwargs
from crossguard.v1 import content_pb2, decision_pb2

tracer = trace.get_tracer("crossguard.cli")


async def publish(
    settings: KafkaSettings, items: Iterable[content_pb2.ContentItem]
) -> dict[str, float]:
    """Send items keyed by id with a traceparent header each; returns id → send time."""
    topics = Topics.from_settings(settings)
    producer = AIOKafkaProducer(
        **client_kwargs(settings), max_batch_size=settings.producer_max_batch_size, acks="all"
    )
    await producer.start()
    sent: dict[str, float] = {}
    try:
        for item in items:
            with tracer.start_as_current_span("publish", attributes={"content.id": item.id}):
                headers = inject_kafka_headers()
                sent[item.id] = time.monotonic()
                await producer.send(
                    topics.content,
                    item.SerializeToString(),
                    key=item.id.encode(),
                    headers=headers,
                )
        await producer.flush()
    finally:
        await producer.stop()
    return sent


async def decisions(
    settings: KafkaSettings, *, idle_timeout: float | None = None
) -> AsyncIterator[decision_pb2.ModerationDecision]:
    """Every decision on the decisions topic, from the beginning, in a private consumer group.

    Stops after `idle_timeout` seconds without a record (None: never)."""
    topics = Topics.from_settings(settings)
    consumer = AIOKafkaConsumer(
        topics.decisions,
        **client_kwargs(settings),
        group_id=f"crossguard-cli-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=min(settings.session_timeout_ms, 10_000),
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        last = time.monotonic()
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            got = False
            for records in batch.values():
                for record in records:
                    got = True
                    if record.value is None:
                        continue
                    yield decision_pb2.ModerationDecision.FromString(record.value)
            if got:
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last > idle_timeout:
                return
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
