"""What the gRPC path costs per request, apart from the model (part of `crossguard bench text`).

The text server is started as usual (same servicer, interceptors, telemetry, micro-batcher and
settings) but over a model that answers a constant score at once, and driven by the bench's
own gRPC clients. The CPU time of the server process and of the clients per request is the
work a request costs besides the model. With the clients on the same CPUs as the server, as in
the bench, it bounds service/raw: raw spends `cpus / raw_items_per_s` of CPU per item, the
service that plus this cost.

`python -m crossguard.text.grpc_cost` runs the constant-model server (prints `PORT <n>`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossguard.core.processes import ManagedProcess
from crossguard.core.taxonomy import Category

CONSTANT_SCORE = 0.01


class ConstantModel:
    """A TextModelLike that scores every category CONSTANT_SCORE, without any computation: the
    service around it is then all that costs."""

    name = "constant"
    version = "1"

    def __init__(self) -> None:
        self.categories = list(Category)
        self.thresholds = dict.fromkeys(self.categories, 0.5)
        self.model_infos = [(self.name, self.version)]
        self._scores = dict.fromkeys(self.categories, CONSTANT_SCORE)

    def load(self) -> None:
        pass

    def ready(self) -> bool:
        return True

    def predict(self, texts: Sequence[str]) -> list[dict[Category, float]]:
        return [dict(self._scores) for _ in texts]

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class GrpcCost:
    requests_per_s: float
    server_ms: float  # server process CPU per request (all its threads, user + system)
    client_ms: float  # the bench clients' CPU per request
    concurrency: int
    stream: bool = False  # measured over ClassifyStream (one stream per client)

    @property
    def total_ms(self) -> float:
        return self.server_ms + self.client_ms

    def ceiling(self, cpus: int, raw_items_per_s: float) -> float:
        """The highest service/raw these costs allow when raw keeps `cpus` CPUs busy."""
        per_item = cpus / raw_items_per_s * 1000.0
        return per_item / (per_item + self.total_ms)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_grpc_cost(
    texts: Sequence[str],
    concurrency: int,
    seconds: float,
    env: dict[str, str] | None = None,
    stream: bool = False,
) -> GrpcCost:
    """Start the constant-model server (one process), drive it with `concurrency` clients
    (unary calls, or with `stream` one ClassifyStream each) for `seconds` after a warm-up, and
    return the CPU per request on both sides (Linux /proc)."""
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
        },
    )
    server.start(ready="PORT", timeout=60)
    try:
        measure_service(server.port, texts, 1.0, concurrency, warmup=0.5, stream=stream)
        server0, client0, t0 = _cpu_seconds(server.pid), time.process_time(), time.perf_counter()
        row = measure_service(server.port, texts, seconds, concurrency, warmup=0.0, stream=stream)
        server1, client1, t1 = _cpu_seconds(server.pid), time.process_time(), time.perf_counter()
    finally:
        server.stop()
    requests = row.items_per_s * (t1 - t0)
    return GrpcCost(
        requests_per_s=row.items_per_s,
        server_ms=(server1 - server0) / requests * 1000.0,
        client_ms=(client1 - client0) / requests * 1000.0,
        concurrency=concurrency,
        stream=stream,
    )


def main() -> None:
    from crossguard.core.logging_setup import configure_logging
    from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
    from crossguard.text.server import SERVICE, quiet_tokenizer_threads, run
    from crossguard.text.settings import TextServerSettings

    quiet_tokenizer_threads()
    settings = TextServerSettings()
    configure_logging(settings.grpc.log_level, service=SERVICE)
    setup_telemetry(SERVICE)
    try:
        asyncio.run(run(settings, model=ConstantModel()))
    finally:
        shutdown_telemetry()


if __name__ == "__main__":
    main()
