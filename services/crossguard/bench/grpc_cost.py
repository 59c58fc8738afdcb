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

The floor (`floor=True`, crossguard.bench.floor): grpc.aio alone with a fixed answer at the
same pace; what no change of ours can cut.

`python -m crossguard.bench.grpc_cost` runs that server (prints `PORT <n>`) through the
serving template's public entry points (crossguard.core.serving.server): the text service's
ClassifierApp with build_model replaced by the constant model, or with
CROSSGUARD_BENCH_GRPC_FLOOR=1 the floor in as many processes; the seconds per text come from
CROSSGUARD_BENCH_SECONDS_PER_TEXT (bench-internal).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossguard.bench.constant import SECONDS_PER_TEXT_VAR, ConstantModel
from crossguard.bench.floor import serve_floor_process
from crossguard.bench.load import measure_service, start_server
from crossguard.core.model_contract import Model
from crossguard.core.serving import server as serving
from crossguard.text.server import APP as TEXT_APP
from crossguard.text.settings import TextServerSettings

FLOOR_VAR = "CROSSGUARD_BENCH_GRPC_FLOOR"


@dataclass(frozen=True)
class GrpcCost:
    requests_per_s: float
    server_ms: float  # the server processes' CPU per request (all threads, user + system)
    client_ms: float  # the bench clients' CPU per request
    concurrency: int
    stream: bool = False  # measured over ClassifyStream (one stream per client)
    floor: bool = False  # grpc.aio alone, a fixed answer (no servicer, interceptors, batcher)
    batch: int = 0  # measured over ClassifyBatch calls of this many items (costs per item)

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


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and all its descendants (the server processes under their
    supervisor, and anything they start)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return _cpu_seconds(pid) + sum(tree_cpu_seconds(int(c)) for c in children)


def measure_grpc_cost(
    texts: Sequence[str],
    concurrency: int,
    seconds: float,
    seconds_per_text: float,
    env: dict[str, str] | None = None,
    stream: bool = False,
    floor: bool = False,
    batch: int = 0,
) -> GrpcCost:
    """Start the server over ConstantModel(seconds_per_text) with the service's `env` (with
    `floor`, the bare grpc.aio server instead), drive it with `concurrency` clients (unary
    calls, with `stream` one ClassifyStream each, or with `batch` ClassifyBatch calls of that
    many items) for `seconds` after a warm-up, and return the CPU per request (per item of a
    batch) on both sides (Linux /proc)."""
    server = start_server(
        "text-grpc-cost",
        "crossguard.bench.grpc_cost",
        {
            "CROSSGUARD_TEXT_EVIDENCE_PASSES": "0",
            **(env or {}),
            SECONDS_PER_TEXT_VAR: repr(seconds_per_text),
            FLOOR_VAR: "1" if floor else "",
        },
        timeout=60,
    )
    try:
        measure_service(
            server.port, texts, 1.0, concurrency, warmup=0.5, stream=stream, batch=batch
        )
        # The CPU window also holds the clients' connecting (16 channels, a few ms of CPU).
        server0, client0 = tree_cpu_seconds(server.pid), time.process_time()
        row = measure_service(
            server.port, texts, seconds, concurrency, warmup=0.0, stream=stream, batch=batch
        )
        server1, client1 = tree_cpu_seconds(server.pid), time.process_time()
    finally:
        server.stop()
    # The requests (batch items) answered in the measured window.
    requests = len(row.latencies) * max(1, batch)
    return GrpcCost(
        requests_per_s=row.items_per_s,
        server_ms=(server1 - server0) / requests * 1000.0,
        client_ms=(client1 - client0) / requests * 1000.0,
        concurrency=concurrency,
        stream=stream,
        floor=floor,
        batch=batch,
    )


def constant_model(settings: TextServerSettings) -> Model[str, Any]:
    """The text ClassifierApp's build_model for the cost server: the constant model."""
    return ConstantModel.from_env()


COST_APP = dataclasses.replace(TEXT_APP, build_model=constant_model)


def main() -> None:
    """The cost server: the text service over the constant model, or the floor (FLOOR_VAR),
    in as many processes as the text service would use."""
    if not os.environ.get(FLOOR_VAR):
        serving.main(COST_APP)
        return
    settings = TextServerSettings()
    processes = serving.server_processes(settings)
    if processes > 1:
        raise SystemExit(
            serving.serve_processes(
                processes, serve_floor_process, TextServerSettings, "crossguard-bench-floor"
            )
        )
    serve_floor_process(settings, None)


if __name__ == "__main__":
    main()
