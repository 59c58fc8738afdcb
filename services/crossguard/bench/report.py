"""The text bench's report: its table of measured rows and ratios, printed with rich."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crossguard.bench.grpc_cost import GrpcCost, per_item_ms
from crossguard.bench.load import BenchRow


@dataclass
class BenchTable:
    rows: list[BenchRow] = field(default_factory=list)
    # Items/s by batch size in the best raw configuration, and by configuration then batch size.
    raw_sweep: dict[int, float] = field(default_factory=dict)
    raw_sweeps: dict[str, dict[int, float]] = field(default_factory=dict)
    raw_config: str = ""
    # The service's effective configuration (printed with the table).
    config: dict[str, str] = field(default_factory=dict)
    texts: int = 0
    mean_chars: float = 0.0
    cpu_count: int = 0
    seconds: float = 0.0
    rounds: int = 1
    # Medians of per-round ratios (set by run_text_bench); None: computed from the rows.
    ratio_raw: float | None = None
    # The same for the service-stream row (ClassifyStream clients), when measured.
    ratio_raw_stream: float | None = None
    # Service over each naive row (median of per-round ratios), by row name.
    ratios_naive: dict[str, float] = field(default_factory=dict)
    # The encoder variant measured ("fp32" or "int8"): raw and service serve it, and the naive
    # row of the same precision ("naive" for fp32, "naive-int8") is the like-for-like baseline.
    precision: str = ""
    # Serving's CPU per request besides the model (crossguard.bench.grpc_cost).
    grpc_cost: GrpcCost | None = None
    grpc_cost_stream: GrpcCost | None = None
    # The same for grpc.aio alone (fixed answers, no servicer): what no change of ours can cut.
    grpc_floor: GrpcCost | None = None

    def row(self, name: str) -> BenchRow | None:
        return next((r for r in self.rows if r.name == name), None)

    @property
    def service_vs_raw(self) -> float | None:
        if self.ratio_raw is not None:
            return self.ratio_raw
        return _ratio(self.row("service"), self.row("raw"))

    @property
    def naive_baseline(self) -> str:
        return "naive-int8" if self.precision == "int8" else "naive"

    @property
    def service_vs_naive(self) -> float | None:
        if self.naive_baseline in self.ratios_naive:
            return self.ratios_naive[self.naive_baseline]
        return _ratio(self.row("service"), self.row(self.naive_baseline))


def _ratio(a: BenchRow | None, b: BenchRow | None) -> float | None:
    if a is None or b is None or b.items_per_s <= 0:
        return None
    return a.items_per_s / b.items_per_s


def print_bench(table: BenchTable, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    sweeps = table.raw_sweeps or {table.raw_config: table.raw_sweep}
    sweep = Table(
        title="raw TextModel.predict (tokenizer + ORT encoder + heads + profanity), items/s"
    )
    sweep.add_column("batch size", justify="right")
    for label in sweeps:
        sweep.add_column(label, justify="right")
    for size in next(iter(sweeps.values()), {}):
        sweep.add_row(str(size), *(f"{s.get(size, 0.0):,.1f}" for s in sweeps.values()))
    console.print(sweep)
    if table.config:
        console.print("service config: " + ", ".join(f"{k}={v}" for k, v in table.config.items()))

    main = Table(
        title=f"text bench, {table.precision or 'default'} encoder: {table.texts} texts "
        f"(mean {table.mean_chars:.0f} chars), "
        f"{table.cpu_count} CPUs, {table.seconds:g}s per path in {table.rounds} interleaved "
        "rounds"
    )
    for col in ("path", "items/s", "p50 ms", "p99 ms", "note"):
        main.add_column(col, justify="left" if col in ("path", "note") else "right")
    for r in table.rows:
        main.add_row(
            r.name,
            f"{r.items_per_s:,.1f}",
            "" if r.p50_ms is None else f"{r.p50_ms:.1f}",
            "" if r.p99_ms is None else f"{r.p99_ms:.1f}",
            r.note,
        )
    console.print(main)
    raw = table.row("raw")
    if raw is not None and raw.items_per_s > 0:
        for r in table.rows:
            if r.name.startswith("service@"):
                console.print(f"{r.name} / raw = {r.items_per_s / raw.items_per_s:.2f}  (medians)")
    if table.service_vs_raw is not None:
        console.print(
            f"service / raw   = {table.service_vs_raw:.2f}  (target ≥ 0.85; median of "
            "per-round ratios)"
        )
    if table.ratio_raw_stream is not None:
        console.print(
            f"service-stream / raw = {table.ratio_raw_stream:.2f}  (the same clients over "
            "ClassifyStream; median of per-round ratios)"
        )
    for cost in (table.grpc_cost, table.grpc_cost_stream, table.grpc_floor):
        if cost is None or raw is None or raw.items_per_s <= 0 or not table.cpu_count:
            continue
        name = "service-stream" if cost.stream else "service"
        what = (
            "grpc.aio alone (fixed answers: no servicer, interceptors, telemetry or batcher)"
            if cost.floor
            else f"serving cost besides the model{' (ClassifyStream)' if cost.stream else ''}"
        )
        console.print(
            f"{what}, {cost.concurrency} clients at {cost.requests_per_s:,.0f} requests/s: CPU "
            f"per request {cost.server_ms:.2f} ms server + {cost.client_ms:.2f} ms clients; raw "
            f"spends {per_item_ms(table.cpu_count, raw.items_per_s):.2f} ms of CPU per item, "
            f"so with the clients on these CPUs {name} / raw ≤ "
            f"{cost.ceiling(table.cpu_count, raw.items_per_s):.2f}"
        )
    baseline = table.naive_baseline
    if table.service_vs_naive is not None:
        console.print(
            f"service / {baseline} = {table.service_vs_naive:.2f}× (target ≥ 3×; the naive "
            f"path with the same {table.precision or 'fp32'} model)"
        )
    for name, ratio in table.ratios_naive.items():
        if name != baseline:
            console.print(f"service / {name} = {ratio:.2f}×")
