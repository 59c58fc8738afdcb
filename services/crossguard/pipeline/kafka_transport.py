"""faust's aiokafka transport with the worker consumer's fetch wait as a setting.

faust-streaming builds its worker consumer with ``fetch_max_wait_ms=1500`` hard-coded
(AIOKafkaConsumerThread._create_worker_consumer) and has no setting for it. Against the
embedded tansu broker, which answers a fetch only when that wait runs out, every item then
waits up to 1.5 s on the consume hop. This transport is faust's own with one change: after
faust has built the aiokafka consumer (not yet started), its fetch wait is replaced by
KafkaSettings.consumer_fetch_max_wait_ms before start() hands it to aiokafka's Fetcher.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiokafka
import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from yarl import URL


class _FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if not isinstance(transport, FetchWaitTransport):
            return consumer
        # aiokafka keeps the constructor argument here until start() builds its Fetcher with
        # it; fail loudly if a new aiokafka stops doing so rather than silently wait 1.5 s.
        if not isinstance(getattr(consumer, "_fetch_max_wait_ms", None), int):
            raise RuntimeError(
                f"aiokafka {aiokafka.__version__}: AIOKafkaConsumer has no _fetch_max_wait_ms; "
                "update crossguard.pipeline.kafka_transport"
            )
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class _FetchWaitConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _FetchWaitConsumerThread:
        return _FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport whose worker consumer fetches with `fetch_max_wait_ms`."""

    Consumer = _FetchWaitConsumer

    def __init__(
        self,
        url: list[URL],
        app: faust.App,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        fetch_max_wait_ms: int,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, app, loop=loop, **kwargs)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def use_fetch_wait_transport(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app` consume through FetchWaitTransport (before anything creates its consumer)."""
    app.transport = FetchWaitTransport(
        app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms
    )
