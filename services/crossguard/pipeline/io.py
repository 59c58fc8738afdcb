"""Producer/consumer helpers for the CLI and tests (plain aiokafka, no faust).

- publish_items(bootstrap, items): ContentItems → crossguard.content.v1, keyed by id, each
  with its own trace context (W3C traceparent header).
- iter_decisions(bootstrap, ...): async iterator of ModerationDecisions.
- collect_decisions(bootstrap, ids, timeout_s): {content id: decision} for the given ids.

Against tansu, read from the beginning and filter by content id: its high watermark is wrong
after multi-record batches, so "latest" offsets cannot be trusted there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Collection, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from crossguard.core.settings import KafkaSettings
from crossguard.core.telemetry import inject_kafka_headers
from crossguard.core.topics import Topics, client_kwargs
from crossguard.v1 import content_pb2, decision_pb2

tracer = trace.get_tracer("crossguard.pipeline.io")

RawRecord = tuple[bytes | None, bytes, Sequence[tuple[str, bytes]]]


def _settings(kafka: KafkaSettings | None) -> KafkaSettings:
    return kafka if kafka is not None else KafkaSettings()


async def _producer(bootstrap: str, kafka: KafkaSettings) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **client_kwargs(kafka, bootstrap),
        acks="all",
        max_batch_size=kafka.producer_max_batch_size,
        enable_idempotence=False,  # tansu: aiokafka's InitProducerId is not supported
    )
    await producer.start()
    return producer


async def publish_raw(
    bootstrap: str,
    records: Iterable[RawRecord],
    *,
    topic: str | None = None,
    kafka: KafkaSettings | None = None,
) -> int:
    """Produce (key, value, headers) records as-is (default topic: content). Returns count."""
    kafka = _settings(kafka)
    topic = topic or Topics.from_settings(kafka).content
    producer = await _producer(bootstrap, kafka)
    try:
        futures = [
            await producer.send(topic, value=value, key=key, headers=list(headers))
            for key, value, headers in records
        ]
        await asyncio.gather(*futures)
        return len(futures)
    finally:
        await producer.stop()


async def publish_items(
    bootstrap: str,
    items: Iterable[content_pb2.ContentItem],
    *,
    kafka: KafkaSettings | None = None,
    topic: str | None = None,
    trace_items: bool = True,
) -> list[str]:
    """Publish ContentItems keyed by id. With trace_items, each item starts its own trace
    (span "publish", kind PRODUCER) carried in its headers. Returns the content ids."""
    kafka = _settings(kafka)
    topic = topic or Topics.from_settings(kafka).content
    producer = await _producer(bootstrap, kafka)
    ids: list[str] = []
    try:
        futures = []
        for item in items:
            headers: list[tuple[str, bytes]] = []
            if trace_items:
                root = otel_context.Context()  # a new trace per item, not the caller's
                with tracer.start_as_current_span(
                    "publish", context=root, kind=SpanKind.PRODUCER
                ) as span:
                    span.set_attribute("crossguard.content_id", item.id)
                    headers = inject_kafka_headers()
            futures.append(
                await producer.send(
                    topic, value=item.SerializeToString(), key=item.id.encode(), headers=headers
                )
            )
            ids.append(item.id)
        await asyncio.gather(*futures)
        return ids
    finally:
        await producer.stop()


async def iter_records(
    bootstrap: str,
    topic: str,
    *,
    kafka: KafkaSettings | None = None,
    from_beginning: bool = True,
    idle_timeout_s: float | None = None,
) -> AsyncGenerator[ConsumerRecord[bytes, bytes], None]:
    """Every record of `topic` (all partitions, no consumer group, nothing committed).

    Stops after `idle_timeout_s` without records (None: runs until cancelled)."""
    kafka = _settings(kafka)
    consumer = AIOKafkaConsumer(
        **client_kwargs(kafka, bootstrap), enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        partitions: set[int] | None = None
        for _ in range(100):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            await consumer.force_metadata_update()
            await asyncio.sleep(0.1)
        if not partitions:
            raise LookupError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if from_beginning:
            await consumer.seek_to_beginning(*tps)
        else:
            await consumer.seek_to_end(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                if idle_timeout_s is not None:
                    try:
                        first = await asyncio.wait_for(consumer.getone(), idle_timeout_s)
                    except TimeoutError:
                        return
                    yield first
                continue
            for records in batch.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def iter_decisions(
    bootstrap: str,
    *,
    kafka: KafkaSettings | None = None,
    content_ids: Collection[str] | None = None,
    from_beginning: bool = True,
    unique: bool = True,
    timeout_s: float | None = None,
) -> AsyncIterator[decision_pb2.ModerationDecision]:
    """Decisions from crossguard.decisions.v1.

    content_ids: only those ids, and stop once each has been seen. unique: yield the first
    decision per content id only (replays produce identical records). timeout_s: raise
    TimeoutError if the ids are not all seen in time (None: wait forever)."""
    kafka = _settings(kafka)
    topic = Topics.from_settings(kafka).decisions
    wanted = set(content_ids) if content_ids is not None else None
    seen: set[str] = set()
    if wanted is not None and not wanted:
        return
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    records = iter_records(bootstrap, topic, kafka=kafka, from_beginning=from_beginning)
    try:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                missing = len(wanted - seen) if wanted is not None else 0
                raise TimeoutError(f"timed out; {missing} content ids without a decision")
            try:
                record = await asyncio.wait_for(anext(records), remaining)
            except TimeoutError:
                continue
            except StopAsyncIteration:
                return
            decision = decision_pb2.ModerationDecision.FromString(record.value or b"")
            cid = decision.content_id
            if wanted is not None and cid not in wanted:
                continue
            if unique and cid in seen:
                continue
            seen.add(cid)
            yield decision
            if wanted is not None and wanted <= seen:
                return
    finally:
        await records.aclose()


async def collect_decisions(
    bootstrap: str,
    content_ids: Collection[str],
    *,
    kafka: KafkaSettings | None = None,
    timeout_s: float = 60.0,
) -> dict[str, decision_pb2.ModerationDecision]:
    """Wait for one decision per content id; TimeoutError names how many are missing."""
    out: dict[str, decision_pb2.ModerationDecision] = {}
    async for d in iter_decisions(
        bootstrap, kafka=kafka, content_ids=content_ids, timeout_s=timeout_s
    ):
        out[d.content_id] = d
    return out


def headers_dict(headers: Sequence[tuple[str, bytes]] | None) -> dict[str, Any]:
    """Last value per header key, decoded as UTF-8 (for display and tests)."""
    return {k: v.decode("utf-8", "replace") for k, v in (headers or [])}
