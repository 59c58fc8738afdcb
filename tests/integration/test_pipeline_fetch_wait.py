"""The worker's consumer fetches with CROSSGUARD_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS, not faust's
hard-coded 1500 ms: a real faust worker on the real broker, its running aiokafka consumer read
back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crossguard.core.settings import KafkaSettings
from crossguard.pipeline.app import create_app
from crossguard.pipeline.kafka_transport import FetchWaitTransport
from crossguard.pipeline.settings import PipelineSettings

# Neither aiokafka's default (500) nor faust's (1500) nor the embedded tuning (20).
FETCH_WAIT_MS = 37


async def test_the_worker_consumer_fetches_with_the_configured_wait(
    kafka: KafkaSettings, tmp_path: Path
) -> None:
    kafka = kafka.model_copy(update={"consumer_fetch_max_wait_ms": FETCH_WAIT_MS})
    settings = PipelineSettings(
        app_id="fetch-wait",
        decision_store="memory",
        web_enabled=False,
        data_dir=tmp_path / "faust",
        text_endpoint="",
        consistency_endpoint="",
    )
    app = create_app(settings, kafka, kafka.bootstrap_servers)
    assert isinstance(app.transport, FetchWaitTransport)
    await app.start()
    try:
        thread = app.consumer._thread  # type: ignore[attr-defined]
        for _ in range(600):  # the consumer thread builds and starts its consumer
            consumer = thread._consumer
            if consumer is not None and getattr(consumer, "_fetcher", None) is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker's aiokafka consumer never started")
        # What the consumer was built with, and what its Fetcher puts in every FetchRequest.
        assert consumer._fetch_max_wait_ms == FETCH_WAIT_MS
        assert consumer._fetcher._fetch_max_wait_ms == FETCH_WAIT_MS
    finally:
        await app.stop()
