"""Measure the pipeline's decision store across a worker crash, on an embedded tansu broker.

A worker (no classifier configured, so its own cost dominates) decides N items; it is SIGKILLed,
a second worker starts (recovering the decision table from its changelog), every item is
published again, and the decisions topic is read back. Prints items/s of the first pass, the
changelog records per partition, and how many items got a second, different decision (0 when
the store recovered every decision).

    python scripts/measure_decision_recovery.py --items 300 --batch-bytes 16384 --store table

--batch-bytes is the worker's producer batch size: tansu's high watermark is wrong after
multi-record batches, which makes faust's table recovery stop short; 64 keeps one record per
batch. About half a minute per run on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
import uuid
from pathlib import Path

from crossguard.core.broker import EmbeddedBroker
from crossguard.core.processes import ManagedProcess
from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import Topics, create_topics
from crossguard.pipeline.decision_table import changelog_topic_name
from crossguard.pipeline.io import collect_decisions, iter_records, publish_items
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import content_pb2


def items(n: int) -> list[content_pb2.ContentItem]:
    return [
        content_pb2.ContentItem(
            id=f"m-{i}",
            tenant="t",
            surface="comment",
            parts=[content_pb2.ContentPart(text=f"hello {i}")],
        )
        for i in range(n)
    ]


async def records_by_key(kafka: KafkaSettings, topic: str) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = collections.defaultdict(list)
    async for r in iter_records(kafka.bootstrap_servers, topic, kafka=kafka, idle_timeout_s=3):
        out[r.key or b""].append(r.value or b"")
    return out


async def per_partition(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    out: collections.Counter[int] = collections.Counter()
    async for r in iter_records(kafka.bootstrap_servers, topic, kafka=kafka, idle_timeout_s=2):
        out[r.partition] += 1
    return dict(sorted(out.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--batch-bytes", type=int, default=64)
    parser.add_argument("--store", choices=["table", "memory"], default="table")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="crossguard-measure-"))
    with EmbeddedBroker() as broker:
        kafka = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            topic_prefix=f"m{uuid.uuid4().hex[:8]}.",
            partitions=2,
            session_timeout_ms=6000,
            producer_max_batch_size=64,
        )
        asyncio.run(create_topics(kafka, broker.bootstrap))
        env = {
            "CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "CROSSGUARD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "CROSSGUARD_KAFKA_PARTITIONS": "2",
            "CROSSGUARD_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "CROSSGUARD_KAFKA_PRODUCER_MAX_BATCH_SIZE": str(args.batch_bytes),
            "CROSSGUARD_LOG_LEVEL": "WARNING",
            "CROSSGUARD_DECISION_STORE": args.store,
        }
        batch = items(args.items)
        first = ManagedProcess("worker-1", "crossguard.pipeline", env, logs)
        first.start(ready="READY", timeout=60)
        t0 = time.perf_counter()
        asyncio.run(publish_items(broker.bootstrap, batch, kafka=kafka))
        asyncio.run(
            collect_decisions(broker.bootstrap, [i.id for i in batch], kafka=kafka, timeout_s=300)
        )
        elapsed = time.perf_counter() - t0
        time.sleep(2)  # let the last offsets commit: measure recovery, not replay
        first.kill()
        changelog = changelog_topic_name(kafka.topic_prefix + PipelineSettings().app_id)
        print(f"store={args.store} producer batch={args.batch_bytes} B items={args.items}")
        print(f"first pass: {args.items / elapsed:.0f} items/s")
        if args.store == "table":
            print(
                f"changelog records per partition: {asyncio.run(per_partition(kafka, changelog))}"
            )

        second = ManagedProcess("worker-2", "crossguard.pipeline", env, logs)
        second.start(ready="READY", timeout=60)
        try:
            asyncio.run(publish_items(broker.bootstrap, batch, kafka=kafka))
            topic = Topics.from_settings(kafka).decisions
            deadline = time.monotonic() + 120
            while True:
                got = asyncio.run(records_by_key(kafka, topic))
                if all(len(v) >= 2 for v in got.values()) or time.monotonic() > deadline:
                    break
        finally:
            second.kill()
        differ = sum(len(set(v)) > 1 for v in got.values())
        print(f"items with a second, different decision after the restart: {differ}")
        print(f"worker logs: {logs}")


if __name__ == "__main__":
    main()
