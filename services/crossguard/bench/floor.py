"""The floor: grpc.aio alone, in the same number of processes on the same port and options as
the text service, parsing every request and answering it with the constant model's response
(same fields, same size, serialized per call) after the same pace (a batch timer on the event
loop with the service's batch settings), with no servicer, interceptors, telemetry or batcher
thread. What it costs per request is what any Python grpc.aio service pays here, so it bounds
what making our own code cheaper could gain.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from crossguard.bench.constant import ConstantModel, constant_response
from crossguard.core.serving.servicer import add_to_server, parse
from crossguard.core.serving.serving_settings import ServerSettings
from crossguard.v1 import classifier_pb2


class BatchPacer:
    """The micro-batcher's timing without its threads: up to `workers` batches "run" at once;
    a free worker takes every waiting call (at most `max_batch`) as one batch, which takes
    `seconds_per_text` per call and is released at once (one timer per batch, as the batcher
    delivers one hand-off per batch)."""

    def __init__(self, seconds_per_text: float, max_batch: int = 32, workers: int = 1) -> None:
        if max_batch < 1 or workers < 1:
            raise ValueError("max_batch >= 1 and workers >= 1 required")
        self.seconds_per_text = seconds_per_text
        self.max_batch = max_batch
        self.workers = workers
        self._waiting: list[asyncio.Future[None]] = []
        self._running = 0
        self.batch_sizes: list[int] = []

    async def wait(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        self._start_batches()
        await fut

    def _start_batches(self) -> None:
        while self._waiting and self._running < self.workers:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            self._running += 1
            self.batch_sizes.append(len(batch))
            delay = self.seconds_per_text * len(batch)
            asyncio.get_running_loop().call_later(delay, self._release, batch)

    def _release(self, batch: list[asyncio.Future[None]]) -> None:
        self._running -= 1
        for fut in batch:
            if not fut.done():
                fut.set_result(None)
        self._start_batches()


class FloorServicer:
    """The ClassifierService methods with nothing of ours behind them: each request is parsed
    as the text servicer parses it and, after BatchPacer's wait, answered with
    constant_response() (built into a message once, serialized per call as any protobuf
    service does)."""

    def __init__(self, pacer: BatchPacer) -> None:
        self.pacer = pacer
        self.answer = classifier_pb2.ClassifyResponse.FromString(constant_response())

    async def classify_bytes(self, raw: bytes, context: Any) -> classifier_pb2.ClassifyResponse:
        parse(classifier_pb2.ClassifyRequest, raw)
        await self.pacer.wait()
        return self.answer

    async def classify_batch_bytes(
        self, raw: bytes, context: Any
    ) -> classifier_pb2.ClassifyBatchResponse:
        batch = parse(classifier_pb2.ClassifyBatchRequest, raw)
        await asyncio.gather(*(self.pacer.wait() for _ in batch.requests))
        return classifier_pb2.ClassifyBatchResponse(
            results=[
                classifier_pb2.ClassifyBatchResult(content_id=r.content_id, response=self.answer)
                for r in batch.requests
            ]
        )

    async def classify_stream(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        async for raw in requests:
            message = parse(classifier_pb2.ClassifyStreamRequest, raw)
            await self.pacer.wait()
            yield classifier_pb2.ClassifyStreamResponse(
                content_id=message.request.content_id, response=self.answer
            )


async def serve_floor(
    settings: ServerSettings[Any], seconds_per_text: float, on_ready: Callable[[int], None]
) -> None:
    """grpc.aio with the text server's options and FloorServicer mounted as the text
    servicer is (paced by the text service's batch settings), until SIGTERM."""
    import grpc

    from crossguard.core.grpc_server import server_options

    service = settings.service
    floor = FloorServicer(BatchPacer(seconds_per_text, service.batch_max, service.batch_workers))
    server = grpc.aio.server(options=server_options(settings.grpc))
    add_to_server(floor, server)
    address = f"{settings.grpc.host}:{settings.grpc.port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise RuntimeError(f"could not bind the floor server to {address}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    on_ready(bound)
    await stop.wait()
    await server.stop(0)


def serve_floor_process(
    settings: ServerSettings[Any], on_ready: Callable[[int], None] | None
) -> None:
    """One floor server process (a crossguard.core.serving.server.ServeOne)."""
    seconds = ConstantModel.from_env().seconds_per_text
    announce = on_ready or (lambda port: print(f"PORT {port}", flush=True))
    asyncio.run(serve_floor(settings, seconds, announce))
