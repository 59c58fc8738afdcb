"""What serving costs per request besides the model (part of `crossguard bench text`).

The text server is started exactly as the bench's service (same processes, servicer,
interceptors, telemetry, micro-batcher and settings) but over a model that computes nothing:
it sleeps as long per text as the real model computes (raw's CPU time per item), so requests
arrive at about the real service's rate and batch as they do there, while the model itself
uses no CPU. The CPU time of the server's processes and of the clients per request is then
the work a request costs besides the model. (Measured at saturation, with a model answering
at once, the cost per request comes out lower: grpc handles more events per wake-up.) With
the clients on the same CPUs as the server, as in the bench, it bounds service/raw: raw
spends `cpus / raw_items_per_s` of CPU per item, the service that plus this cost.

The floor (`floor=True`): grpc.aio alone, in the same number of processes on the same port
and options, parsing every request and answering it with the constant model's response (same
fields, same size, serialized per call) after the same pace (a batch timer on the event loop
with the service's batch settings), with no servicer, interceptors, telemetry or batcher thread.
What it costs per request is what any Python grpc.aio service pays here, so it bounds what
making our own code cheaper could gain.

`python -m crossguard.text.grpc_cost` runs that server (prints `PORT <n>`); the seconds per
text come from CROSSGUARD_BENCH_SECONDS_PER_TEXT, the floor from CROSSGUARD_BENCH_GRPC_FLOOR=1
(bench-internal).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from crossguard.core.processes import ManagedProcess
from crossguard.core.taxonomy import Category, severity
from crossguard.text.servicer import add_to_server, parse
from crossguard.v1 import classifier_pb2

if TYPE_CHECKING:
    from crossguard.text.settings import TextServerSettings

CONSTANT_SCORE = 0.01
SECONDS_PER_TEXT_VAR = "CROSSGUARD_BENCH_SECONDS_PER_TEXT"
FLOOR_VAR = "CROSSGUARD_BENCH_GRPC_FLOOR"


class ConstantModel:
    """A TextModelLike that scores every category CONSTANT_SCORE after sleeping
    `seconds_per_text` per text (the GIL released, no CPU): the service around it is then all
    that costs."""

    name = "constant"
    version = "1"

    def __init__(self, seconds_per_text: float = 0.0) -> None:
        self.seconds_per_text = seconds_per_text
        self.categories = list(Category)
        self.thresholds = dict.fromkeys(self.categories, 0.5)
        self.model_infos = [(self.name, self.version)]
        self._scores = dict.fromkeys(self.categories, CONSTANT_SCORE)

    @classmethod
    def from_env(cls) -> ConstantModel:
        return cls(float(os.environ.get(SECONDS_PER_TEXT_VAR, "0")))

    def load(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def predict(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        if self.seconds_per_text > 0:
            time.sleep(self.seconds_per_text * len(texts))
        return [dict(self._scores) for _ in texts]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class GrpcCost:
    requests_per_s: float
    server_ms: float  # the server processes' CPU per request (all threads, user + system)
    client_ms: float  # the bench clients' CPU per request
    concurrency: int
    stream: bool = False  # measured over ClassifyStream (one stream per client)
    floor: bool = False  # grpc.aio alone, a fixed answer (no servicer, interceptors, batcher)

    @property
    def total_ms(self) -> float:
        return self.server_ms + self.client_ms

    def ceiling(self, cpus: int, raw_items_per_s: float) -> float:
        """The highest service/raw these costs allow when raw keeps `cpus` CPUs busy."""
        per_item = per_item_ms(cpus, raw_items_per_s)
        return per_item / (per_item + self.total_ms)


def per_item_ms(cpus: int, items_per_s: float) -> float:
    """CPU milliseconds per item of a path that keeps `cpus` CPUs busy at `items_per_s`."""
    return cpus / items_per_s * 1000.0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (the server processes under their
    supervisor, and anything they start)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return _cpu_seconds(pid) + sum(_tree_cpu_seconds(int(c)) for c in children)


def measure_grpc_cost(
    texts: Sequence[str],
    concurrency: int,
    seconds: float,
    seconds_per_text: float,
    env: dict[str, str] | None = None,
    stream: bool = False,
    floor: bool = False,
) -> GrpcCost:
    """Start the server over ConstantModel(seconds_per_text) with the service's `env` (with
    `floor`, the bare grpc.aio server instead), drive it with `concurrency` clients (unary
    calls, or with `stream` one ClassifyStream each) for `seconds` after a warm-up, and return
    the CPU per request on both sides (Linux /proc)."""
    from crossguard.text.bench import measure_service

    server = ManagedProcess(
        "text-grpc-cost",
        "crossguard.text.grpc_cost",
        {
            "CROSSGUARD_HOST": "127.0.0.1",
            "CROSSGUARD_PORT": "0",
            "CROSSGUARD_GRACE_SECONDS": "2",
            "CROSSGUARD_LOG_LEVEL": "WARNING",
            "CROSSGUARD_TEXT_EVIDENCE_PASSES": "0",
            **(env or {}),
            SECONDS_PER_TEXT_VAR: repr(seconds_per_text),
            FLOOR_VAR: "1" if floor else "",
        },
    )
    server.start(ready="PORT", timeout=60)
    try:
        measure_service(server.port, texts, 1.0, concurrency, warmup=0.5, stream=stream)
        # The CPU window also holds the clients' connecting (16 channels, a few ms of CPU).
        server0, client0 = _tree_cpu_seconds(server.pid), time.process_time()
        row = measure_service(server.port, texts, seconds, concurrency, warmup=0.0, stream=stream)
        server1, client1 = _tree_cpu_seconds(server.pid), time.process_time()
    finally:
        server.stop()
    requests = len(row.latencies)  # the requests answered in the measured window
    return GrpcCost(
        requests_per_s=row.items_per_s,
        server_ms=(server1 - server0) / requests * 1000.0,
        client_ms=(client1 - client0) / requests * 1000.0,
        concurrency=concurrency,
        stream=stream,
        floor=floor,
    )


# --- the floor: grpc.aio alone ---------------------------------------------------------------


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


def constant_response() -> bytes:
    """The response the text server gives for ConstantModel's scores (same fields, same size)."""
    from crossguard.core.proto_convert import result_to_proto
    from crossguard.core.results import ClassifierResult, Modality, Score, StageTime

    result = ClassifierResult(
        modality=Modality.TEXT,
        scores=[Score(c, CONSTANT_SCORE, severity(CONSTANT_SCORE)) for c in Category],
        models=[(ConstantModel.name, ConstantModel.version)],
        timings=[StageTime(s, 0.123) for s in ("prepare", "model", "evidence", "total")],
    )
    return bytes(result_to_proto(result).SerializeToString())


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
    settings: TextServerSettings, seconds_per_text: float, on_ready: Callable[[int], None]
) -> None:
    """grpc.aio with the text server's options and FloorServicer mounted as the text
    servicer is (paced by the text service's batch settings), until SIGTERM."""
    import grpc

    from crossguard.core.grpc_server import server_options

    text = settings.text
    floor = FloorServicer(BatchPacer(seconds_per_text, text.batch_max, text.batch_workers))
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
    settings: TextServerSettings, on_ready: Callable[[int], None] | None
) -> None:
    """One floor server process (crossguard.text.server.ServeOne)."""
    seconds = ConstantModel.from_env().seconds_per_text
    announce = on_ready or (lambda port: print(f"PORT {port}", flush=True))
    asyncio.run(serve_floor(settings, seconds, announce))


def main() -> None:
    from crossguard.text.server import main as serve

    if os.environ.get(FLOOR_VAR):
        serve(serve_one=serve_floor_process)
    else:
        serve(model_factory=ConstantModel.from_env)


if __name__ == "__main__":
    main()
