"""Client channels to Crossguard's gRPC services, shared by every caller (the pipeline, the
consistency service's text client): one place for channel options, retries, tracing and the
coalescing classifier client.

Retries use grpc's built-in retry policy (service config): UNAVAILABLE and RESOURCE_EXHAUSTED
are retried with exponential backoff within the call's deadline. Channels are cached per
(endpoint, service, retries), so a change in retry counts takes effect on the next call.
Trace context goes out in gRPC metadata via the OpenTelemetry client interceptors.

Classifier calls are coalesced (crossguard.core.serving.batch_client): concurrent unary
Classify calls to one endpoint go out as ClassifyBatch calls of up to
`classify_batch_max_items` items, each on the endpoint's next connection;
`classify_batch_max_items=1` sends unary calls.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from crossguard.core.serving.batch_client import BatchingClassifierClient
from crossguard.v1 import classifier_pb2_grpc

RETRYABLE = ["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
CLASSIFIER_SERVICE = "crossguard.v1.ClassifierService"

StubT = TypeVar("StubT")


def service_config(service: str, retries: int, initial_backoff_ms: int) -> str:
    """gRPC service config JSON with a retry policy for every method of `service`."""
    method: dict[str, object] = {"name": [{"service": service}]}
    if retries > 0:
        method["retryPolicy"] = {
            "maxAttempts": retries + 1,  # the policy bounds retries at 4 (grpc's cap: 5)
            "initialBackoff": f"{initial_backoff_ms / 1000:.3f}s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": RETRYABLE,
        }
    return json.dumps({"methodConfig": [method]})


@dataclass(frozen=True)
class _Key:
    endpoint: str
    service: str
    retries: int


class ChannelPool:
    """Lazily created grpc.aio channels: `connections` per (endpoint, service, retries), each
    its own TCP connection, handed out in turn so that calls spread over the processes or pods
    behind one address (a single connection would pin every call to one of them)."""

    def __init__(
        self,
        *,
        max_message_bytes: int,
        initial_backoff_ms: int,
        connections: int = 1,
        classify_batch_max_items: int = 1,
        classify_batch_max_delay_ms: float = 0.0,
    ) -> None:
        self.classify_batch_max_items = classify_batch_max_items
        self.classify_batch_max_delay_ms = classify_batch_max_delay_ms
        self._batching: dict[_Key, BatchingClassifierClient] = {}
        self.max_message_bytes = max_message_bytes
        self.initial_backoff_ms = initial_backoff_ms
        self.connections = max(1, connections)
        self._channels: dict[_Key, list[grpc.aio.Channel]] = {}
        # One turn counter per key: a shared one would interleave endpoints (text, consistency,
        # text, ...) and leave each only some of its connections.
        self._turns: dict[_Key, itertools.count[int]] = {}
        # Stubs by id() of their channel (each channel serves one service).
        self._stubs: dict[int, Any] = {}

    def channel(self, endpoint: str, service: str, retries: int) -> grpc.aio.Channel:
        key = _Key(endpoint, service, retries)
        chans = self._channels.get(key)
        if chans is None:
            chans = self._channels[key] = [
                self._open(endpoint, service, retries) for _ in range(self.connections)
            ]
            self._turns[key] = itertools.count()
        return chans[next(self._turns[key]) % len(chans)]

    def _open(self, endpoint: str, service: str, retries: int) -> grpc.aio.Channel:
        options = [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(service, retries, self.initial_backoff_ms)),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.max_send_message_length", self.max_message_bytes),
            # Reconnect quickly after a classifier restarts.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 2000),
            # Its own connection: channels to one address otherwise share one.
            ("grpc.use_local_subchannel_pool", 1),
        ]
        return grpc.aio.insecure_channel(
            endpoint,
            options=options,
            interceptors=aio_client_interceptors(),  # type: ignore[no-untyped-call]
        )

    def classifier(
        self, endpoint: str, retries: int
    ) -> classifier_pb2_grpc.ClassifierServiceStub | BatchingClassifierClient:
        """What to call `Classify` on: with batching, the endpoint's coalescing client (one per
        endpoint and retry count, sending each batch on the next connection); else a stub."""
        if self.classify_batch_max_items <= 1:
            return self._classifier_stub(endpoint, retries)
        key = _Key(endpoint, CLASSIFIER_SERVICE, retries)
        client = self._batching.get(key)
        if client is None:
            client = self._batching[key] = BatchingClassifierClient(
                lambda: self._classifier_stub(endpoint, retries),
                max_items=self.classify_batch_max_items,
                max_delay=self.classify_batch_max_delay_ms / 1000.0,
            )
        return client

    def _classifier_stub(
        self, endpoint: str, retries: int
    ) -> classifier_pb2_grpc.ClassifierServiceStub:
        return self.stub(
            endpoint, CLASSIFIER_SERVICE, retries, classifier_pb2_grpc.ClassifierServiceStub
        )

    def stub(
        self,
        endpoint: str,
        service: str,
        retries: int,
        kind: Callable[[grpc.aio.Channel], StubT],
    ) -> StubT:
        """A `kind` stub (generated for `service`) on the endpoint's next connection; one stub
        per channel, built once, not per call."""
        chan = self.channel(endpoint, service, retries)
        stub = self._stubs.get(id(chan))
        if stub is None:
            stub = self._stubs[id(chan)] = kind(chan)
        return stub

    async def close(self) -> None:
        batching, self._batching = self._batching, {}
        for client in batching.values():
            await client.close()
        channels, self._channels = self._channels, {}
        self._stubs = {}
        for chans in channels.values():
            for chan in chans:
                await chan.close()
