"""`python -m crossguard.pipeline`: run the pipeline worker.

Settings come from the environment (see PipelineSettings and KafkaSettings). With
CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS empty, an embedded tansu broker is started, its address
printed as `BROKER host:port`, and its tuning (core.broker.EMBEDDED_KAFKA_TUNING) applied to
the Kafka settings not set explicitly. `READY` is printed once the worker has joined its group.
SIGTERM/SIGINT stop it gracefully.
"""

from __future__ import annotations

import asyncio
import sys

import faust
from aiokafka import AIOKafkaProducer

from crossguard.core.broker import EmbeddedBroker, tuned_for_embedded
from crossguard.core.logging_setup import configure_logging
from crossguard.core.settings import KafkaSettings
from crossguard.core.telemetry import setup_telemetry
from crossguard.core.topics import Topics, client_kwargs, create_topics
from crossguard.pipeline.app import create_app
from crossguard.pipeline.settings import PipelineSettings


async def content_partitions(kafka: KafkaSettings, bootstrap: str) -> int:
    """The content topic's partition count on the broker (it may predate our settings)."""
    producer = AIOKafkaProducer(**client_kwargs(kafka, bootstrap))
    await producer.start()
    try:
        return len(await producer.partitions_for(Topics.from_settings(kafka).content))
    finally:
        await producer.stop()


def main() -> None:
    settings = PipelineSettings()
    kafka = KafkaSettings()
    configure_logging(settings.log_level, service="pipeline")
    setup_telemetry("crossguard-pipeline")
    broker: EmbeddedBroker | None = None
    bootstrap = kafka.bootstrap_servers
    if not bootstrap:
        broker = EmbeddedBroker()
        bootstrap = broker.start()
        kafka = tuned_for_embedded(kafka)
        print(f"BROKER {bootstrap}", flush=True)
    try:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(create_topics(kafka, bootstrap))
        partitions = loop.run_until_complete(content_partitions(kafka, bootstrap))
        app = create_app(settings, kafka, bootstrap, content_partitions=partitions)
        worker = faust.Worker(
            app,
            loop=loop,
            loglevel=settings.log_level,
            quiet=True,
            redirect_stdouts=False,
            override_logging=False,
        )
        worker.execute_from_commandline()
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
    sys.exit(0)
