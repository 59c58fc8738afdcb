"""`crossguard bench pipeline` at a tiny size: the real broker, text service and pipeline
worker, labeled items produced and their decisions consumed; every row and target is filled
and printed. Rates are only checked to exist: speed is reported, never asserted."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from crossguard.bench.pipeline import print_pipeline_bench, run_pipeline_bench
from crossguard.core.model_repository import ModelRepository

pytestmark = pytest.mark.integration


def test_bench_pipeline_smoke(model_repository: ModelRepository) -> None:
    bench = run_pipeline_bench(
        model_repository,
        items=24,
        batch_sizes=(8,),
        raw_seconds=0.5,
        cost_seconds=0.5,
        batch_items=8,
        unary_clients=2,
        agent_concurrency=16,
        with_evidence=False,
        server_env={"CROSSGUARD_TEXT_PROCESSES": "1"},
        progress=lambda _msg: None,
    )
    assert bench.chose["text processes"] == "1"
    assert bench.chose["worker classify_batch_max_items"] == "8"
    assert "CPUExecutionProvider" in bench.chose["providers"]
    assert [(r.name, r.items) for r in bench.loads] == [("full load", 24), ("half load", 12)]
    assert all(r.items_per_s > 0 and r.p99_ms >= r.p50_ms > 0 for r in bench.loads)
    assert bench.raw_best[2] > 0
    assert set(bench.profile) == {
        "text service",
        "pipeline worker",
        "broker (tansu)",
        "bench producer + consumer",
    }
    assert bench.cost_batch is not None and bench.cost_batch.batch == 8
    assert bench.cost_unary is not None and bench.cost_unary.server_ms > 0
    assert len(bench.targets()) == 3

    out = io.StringIO()
    print_pipeline_bench(bench, Console(file=out, width=200))
    printed = out.getvalue()
    for heading in ("raw TextModel.predict", "pipeline bench", "targets (issue 10)", "chose:"):
        assert heading in printed
