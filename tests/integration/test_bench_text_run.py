"""`crossguard bench text` end to end at a tiny size: every path runs against the real model,
server and PyTorch baseline, and the table names the variant and its like-for-like baseline.
Rates are only checked to exist: speed is reported, never asserted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from crossguard.bench.report import print_bench
from crossguard.bench.text import run_text_bench
from crossguard.core.model_repository import ModelRepository

pytestmark = pytest.mark.integration


def test_bench_runs_every_path_for_the_int8_encoder(model_repository: ModelRepository) -> None:
    table = run_text_bench(
        model_repository,
        seconds=1.0,
        concurrency=4,
        extra_concurrency=(),
        rounds=1,
        n_texts=32,
        batch_sizes=(2,),
        raw_threads=(1,),
        with_evidence=False,
        precision="int8",
        server_env={"CROSSGUARD_TEXT_PROCESSES": "1"},
        progress=lambda _msg: None,
    )
    assert table.precision == "int8"
    assert table.config["precision"] == "int8" and table.config["processes"] == "1"
    assert {r.name for r in table.rows} == {
        "raw",
        "service",
        "service-stream",
        "naive",
        "naive-int8",
    }
    assert all(r.items_per_s > 0 for r in table.rows)
    assert table.naive_baseline == "naive-int8"
    assert set(table.ratios_naive) == {"naive", "naive-int8"}
    assert table.service_vs_raw is not None and table.service_vs_raw > 0
    assert table.ratio_raw_stream is not None and table.ratio_raw_stream > 0
    cost = table.grpc_cost
    assert cost is not None and cost.concurrency == 4
    assert cost.requests_per_s > 0 and cost.server_ms > 0 and cost.client_ms > 0
    streamed = table.grpc_cost_stream
    assert streamed is not None and streamed.stream and streamed.server_ms > 0
    floor = table.grpc_floor
    # The server's CPU comes from /proc in clock ticks (10 ms): over a one-second window on a
    # busy machine the bare floor server can read as 0.
    assert floor is not None and floor.floor and not floor.stream and floor.server_ms >= 0

    out = io.StringIO()
    print_bench(table, Console(file=out, width=120))
    text = out.getvalue()
    assert "int8 encoder" in text
    assert "service / naive-int8" in text and "service / naive =" in text
    assert "serving cost besides the model, 4 clients at" in text
    assert "service-stream / raw" in text
    assert "serving cost besides the model (ClassifyStream), 4 clients at" in text
    assert "grpc.aio alone (fixed answers: no servicer, interceptors, telemetry or" in text
