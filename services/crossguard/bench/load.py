"""A reusable gRPC load generator for ClassifierService: closed-loop clients over unary
Classify, ClassifyStream or ClassifyBatch (`batch` items per call) against a server on a
loopback port, and the rows it measures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from crossguard.core.processes import ManagedProcess, service_process
from crossguard.core.serving.servicer import CLASSIFY, CLASSIFY_BATCH, CLASSIFY_STREAM


@dataclass(frozen=True)
class BenchRow:
    name: str
    items_per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""
    # Per-request latencies in ms (kept for merging rounds; not printed).
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


def start_server(
    name: str, module: str, env: Mapping[str, str] | None = None, timeout: float = 120.0
) -> ManagedProcess:
    """`python -m <module>` on a random loopback port (`.port` once it printed `PORT <n>`)."""
    server = service_process(name, module, env, grace_seconds=2, log_level="WARNING")
    server.start(ready="PORT", timeout=timeout)
    return server


def classify_requests(texts: Sequence[str], stream: bool = False, batch: int = 0) -> list[bytes]:
    """Serialised requests: ClassifyRequest each, ClassifyStreamRequest with `stream`, or
    ClassifyBatchRequest of `batch` texts each."""
    from crossguard.v1 import classifier_pb2, content_pb2

    requests = [
        classifier_pb2.ClassifyRequest(
            content_id=f"bench-{i}", parts=[content_pb2.ContentPart(part_id="t", text=t)]
        )
        for i, t in enumerate(texts)
    ]
    if batch:
        return [
            classifier_pb2.ClassifyBatchRequest(
                requests=[requests[(k + j) % len(requests)] for j in range(batch)]
            ).SerializeToString()
            for k in range(0, len(requests), batch)
        ]
    if stream:
        return [
            classifier_pb2.ClassifyStreamRequest(request=r).SerializeToString() for r in requests
        ]
    return [r.SerializeToString() for r in requests]


async def _drive(
    port: int,
    payloads: Sequence[bytes],
    seconds: float,
    concurrency: int,
    warmup: float,
    stream: bool = False,
    batch: int = 0,
) -> tuple[float, list[float]]:
    """`concurrency` closed-loop clients, one request in flight each: unary Classify calls, or
    with `stream` one ClassifyStream per client carrying its requests one after another, or
    with `batch` ClassifyBatch calls (the payloads are batches). Returns the measured seconds
    and the latency of every call answered in them."""
    import grpc

    # Pre-serialised requests and undecoded responses: the client's CPU (same machine) stays
    # out of the way of the server's. One connection per client (a local subchannel pool, or
    # grpc shares one connection among channels to the same address), as independent clients
    # would open; a server of several processes gets them spread by the kernel.
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(concurrency)
    ]
    calls = [ch.unary_unary(CLASSIFY_BATCH if batch else CLASSIFY) for ch in channels]
    streams = [ch.stream_stream(CLASSIFY_STREAM) for ch in channels]
    latencies: list[float] = []
    counter = 0
    measuring = False
    stop_at = 0.0

    async def client(k: int) -> None:
        nonlocal counter
        call = calls[k % len(calls)]
        open_stream = streams[k % len(streams)]() if stream else None
        while True:
            now = time.perf_counter()
            if measuring and now >= stop_at:
                break
            payload = payloads[counter % len(payloads)]
            counter += 1
            t0 = time.perf_counter()
            if open_stream is None:
                await call(payload, timeout=60)
            else:
                await open_stream.write(payload)
                _raise_stream_error(await open_stream.read())
            if measuring:
                latencies.append(time.perf_counter() - t0)
        if open_stream is not None:
            await open_stream.done_writing()
            await open_stream.read()  # EOF: the server ended the stream

    try:
        tasks = [asyncio.ensure_future(client(k)) for k in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t_start = time.perf_counter()
        stop_at = t_start + seconds
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t_start
    finally:
        for ch in channels:
            await ch.close()
    return elapsed, latencies


def _raise_stream_error(answer: object) -> None:
    """A stream answers a failed request with an error message instead of failing the call:
    count it as a failure, as a unary call's status would be, not as throughput."""
    from crossguard.v1 import classifier_pb2

    if not isinstance(answer, bytes):
        raise RuntimeError(f"ClassifyStream ended early: {answer!r}")
    response = classifier_pb2.ClassifyStreamResponse.FromString(answer)
    if response.HasField("error"):
        raise RuntimeError(
            f"bench request {response.content_id!r} failed: {response.error.code} "
            f"{response.error.message}"
        )


def measure_service(
    port: int,
    texts: Sequence[str],
    seconds: float,
    concurrency: int,
    warmup: float = 1.5,
    stream: bool = False,
    batch: int = 0,
) -> BenchRow:
    """Closed-loop load (see _drive); items/s counts `batch` items per ClassifyBatch call and
    the latencies are per call."""
    payloads = classify_requests(texts, stream, batch)
    return measure_payloads(port, payloads, seconds, concurrency, warmup, stream, batch)


def measure_payloads(
    port: int,
    payloads: Sequence[bytes],
    seconds: float,
    concurrency: int,
    warmup: float = 1.5,
    stream: bool = False,
    batch: int = 0,
) -> BenchRow:
    """measure_service over pre-serialised requests (any modality's parts)."""
    elapsed, latencies = asyncio.run(
        _drive(port, payloads, seconds, concurrency, warmup, stream, batch)
    )
    lat = np.asarray(latencies) * 1000.0
    return BenchRow(
        name="service-stream" if stream else "service-batch" if batch else "service",
        items_per_s=len(lat) * max(1, batch) / elapsed,
        p50_ms=float(np.percentile(lat, 50)) if len(lat) else None,
        p99_ms=float(np.percentile(lat, 99)) if len(lat) else None,
        note=f"{concurrency} clients",
        latencies=lat,
    )


def median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if values else 0.0


def merge_rows(name: str, rows: Sequence[BenchRow], note: str) -> BenchRow:
    """Median rate over rounds; latency percentiles over all rounds' requests."""
    lat = np.concatenate([r.latencies for r in rows]) if rows else np.zeros(0)
    return BenchRow(
        name,
        median([r.items_per_s for r in rows]),
        float(np.percentile(lat, 50)) if len(lat) else None,
        float(np.percentile(lat, 99)) if len(lat) else None,
        note,
    )
