"""The gRPC-cost bench's arithmetic, its constant model and the floor's pacer (no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from crossguard.bench.constant import (
    CONSTANT_SCORE,
    SECONDS_PER_TEXT_VAR,
    ConstantModel,
    constant_response,
)
from crossguard.bench.floor import BatchPacer
from crossguard.bench.grpc_cost import GrpcCost
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2

pytestmark = pytest.mark.unit


def test_ceiling_is_model_cpu_over_model_plus_grpc_cpu() -> None:
    cost = GrpcCost(requests_per_s=2000.0, server_ms=0.6, client_ms=0.4, concurrency=16)
    # 2 CPUs at 400 items/s: 5 ms of CPU per item; the gRPC path adds 1 ms.
    assert cost.total_ms == pytest.approx(1.0)
    assert cost.ceiling(2, 400.0) == pytest.approx(5.0 / 6.0)
    assert cost.ceiling(2, 4000.0) == pytest.approx(0.5 / 1.5)


def test_constant_model_answers_every_category_without_sharing_dicts() -> None:
    model = ConstantModel()
    assert model.seconds_per_text == 0
    out = model.predict(["a", "b"])
    assert [set(o) for o in out] == [set(Category)] * 2
    assert all(v == CONSTANT_SCORE for o in out for v in o.values())
    out[0][Category.HATE] = 1.0
    assert model.predict(["c"])[0][Category.HATE] == CONSTANT_SCORE
    assert model.ready() and set(model.thresholds) == set(model.categories)


def test_constant_model_paced_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECONDS_PER_TEXT_VAR, "0.004")
    assert ConstantModel.from_env().seconds_per_text == pytest.approx(0.004)


async def test_batch_pacer_releases_callers_that_queued_during_a_batch_together() -> None:
    pacer = BatchPacer(0.001)
    first = asyncio.ensure_future(pacer.wait())
    await asyncio.sleep(0)  # the first call starts a batch of one
    rest = [asyncio.ensure_future(pacer.wait()) for _ in range(3)]
    await asyncio.gather(first, *rest)
    assert pacer.batch_sizes == [1, 3]
    await pacer.wait()  # idle again: a new batch starts at once
    assert pacer.batch_sizes == [1, 3, 1]


async def test_batch_pacer_caps_batches_and_runs_workers_at_once() -> None:
    pacer = BatchPacer(0.001, max_batch=2, workers=2)
    await asyncio.gather(*(pacer.wait() for _ in range(7)))
    # The first two calls start a batch each at once (two workers); the other five wait and
    # go in batches of at most 2 as workers free up.
    assert pacer.batch_sizes == [1, 1, 2, 2, 1]


def test_constant_response_scores_every_category_as_the_constant_model() -> None:
    response = classifier_pb2.ClassifyResponse.FromString(constant_response())
    result = result_from_proto(response)
    assert {s.category for s in result.scores} == set(Category)
    assert all(s.score == pytest.approx(CONSTANT_SCORE) for s in result.scores)
    assert result.models == [(ConstantModel.name, ConstantModel.version)]
