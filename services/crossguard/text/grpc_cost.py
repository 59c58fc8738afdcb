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

`python -m crossguard.text.grpc_cost` runs that server (prints `PORT <n>`); the seconds per
text come from CROSSGUARD_BENCH_SECONDS_PER_TEXT (bench-internal).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossguard.core.processes import ManagedProcess
from crossguard.core.taxonomy import Category

CONSTANT_SCORE = 0.01
SECONDS_PER_TEXT_VAR = "CROSSGUARD_BENCH_SECONDS_PER_TEXT"


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
) -> GrpcCost:
    """Start the server over ConstantModel(seconds_per_text) with the service's `env`, drive
    it with `concurrency` clients (unary calls, or with `stream` one ClassifyStream each) for
    `seconds` after a warm-up, and return the CPU per request on both sides (Linux /proc)."""
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
    )


def main() -> None:
    from crossguard.text.server import main as serve

    serve(model_factory=ConstantModel.from_env)


if __name__ == "__main__":
    main()
