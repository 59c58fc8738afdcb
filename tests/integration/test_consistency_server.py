from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossguard.consistency.server import SERVICE_NAME, build_server
from crossguard.consistency.settings import ConsistencySettings
from crossguard.core.grpc_server import GrpcServer
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.settings import GrpcServerSettings
from crossguard.core.taxonomy import Category
from crossguard.pipeline.fanout import Fanout
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.process import Processor, default_fanout
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import ValidItem
from crossguard.policy import MissingSignal, Policy, PolicyStore
from crossguard.v1 import (
    classifier_pb2,
    consistency_pb2,
    consistency_pb2_grpc,
    content_pb2,
    decision_pb2,
    taxonomy_pb2,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    srv = build_server(
        GrpcServerSettings(port=0, grace_seconds=0.5),
        ConsistencySettings(semantic_agreement=False, max_text_chars=50, max_responses=3),
    )
    await srv.start()
    yield srv
    await srv.stop()


async def test_check_fuses_over_a_real_server(server: GrpcServer) -> None:
    text = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)
    text.scores.add(category=Category.HATE.proto, score=0.1)
    image = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_IMAGE)
    image.scores.add(category=Category.HATE.proto, score=0.9)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = consistency_pb2_grpc.ConsistencyServiceStub(channel)
        resp = await stub.Check(consistency_pb2.CheckRequest(responses=[text, image]))
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert [(s.category, round(s.score, 3)) for s in resp.fused_scores] == [
        (Category.HATE.proto, 0.9)
    ]
    assert resp.signals[0].name == "modality_disagreement/hate"
    assert resp.fused[0].explanation == "hate 0.90 from image; text 0.10"
    assert status.status == health_pb2.HealthCheckResponse.SERVING


async def test_check_refuses_input_over_its_limits(server: GrpcServer) -> None:
    text = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)
    long_caption = content_pb2.ContentItem(
        id="x", parts=[content_pb2.ContentPart(part_id="c", text="word " * 20)]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = consistency_pb2_grpc.ConsistencyServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as many:
            await stub.Check(consistency_pb2.CheckRequest(responses=[text] * 4))
        with pytest.raises(grpc.aio.AioRpcError) as long:
            await stub.Check(consistency_pb2.CheckRequest(item=long_caption, responses=[text]))
    assert many.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CROSSGUARD_CONSISTENCY_MAX_RESPONSES" in (many.value.details() or "")
    assert long.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CROSSGUARD_CONSISTENCY_MAX_TEXT_CHARS" in (long.value.details() or "")


class _TextOnlyFanout(Fanout):
    """The pipeline's fan-out with the text classifier answered locally (hate 0.3), so that
    only the consistency call goes over the wire."""

    def __init__(self, settings: PipelineSettings) -> None:
        real = default_fanout(settings, PipelineMetrics())
        super().__init__(settings, real.clients, real.metrics)

    async def classify_one(
        self, valid: ValidItem, modality: Modality, policy: Policy
    ) -> ClassifierResult | MissingSignal:
        return ClassifierResult(
            Modality.TEXT, [Score(Category.HATE, 0.3, 0)], models=[("local-text", "1")]
        )


class _AnsweringConsistency(consistency_pb2_grpc.ConsistencyServiceServicer):
    """A consistency service answering fixed fused scores (`category=999`: one this pipeline
    does not know, as a newer service version might send)."""

    def __init__(self, category: int, score: float) -> None:
        self.category, self.score = category, score

    async def Check(
        self, request: consistency_pb2.CheckRequest, context: object
    ) -> consistency_pb2.CheckResponse:
        resp = consistency_pb2.CheckResponse()
        resp.fused_scores.add(category=self.category, score=self.score)
        resp.signals.add(
            name="caption_ocr_similarity",
            value=0.25,
            modalities=[taxonomy_pb2.MODALITY_TEXT, taxonomy_pb2.MODALITY_IMAGE],
            detail="d",
        )
        return resp


async def _serving(servicer: _AnsweringConsistency) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    consistency_pb2_grpc.add_ConsistencyServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _decide_via(endpoint: str) -> decision_pb2.ModerationDecision:
    settings = PipelineSettings(text_endpoint="local:1", consistency_endpoint=endpoint)
    proc = Processor(settings, PolicyStore(None), fanout=_TextOnlyFanout(settings))
    item = content_pb2.ContentItem(
        id="c1", tenant="t", surface="comment", parts=[content_pb2.ContentPart(text="hi")]
    )
    try:
        out = await proc.process(item.SerializeToString())
    finally:
        await proc.close()
    assert out.kind == "decision" and out.decision is not None
    return out.decision


async def test_pipeline_decides_on_the_services_fused_scores() -> None:
    """The fused score (0.77) differs from what local max fusion would give (0.3)."""
    server, port = await _serving(_AnsweringConsistency(Category.HATE.proto, 0.77))
    try:
        d = await _decide_via(f"127.0.0.1:{port}")
    finally:
        await server.stop(None)
    assert [(c.category, round(c.score, 3)) for c in d.categories] == [(Category.HATE.proto, 0.77)]
    assert not any("local max fusion" in r for r in d.reasons)
    # Its cross-modal signals reach the policy (through its context) and the decision record.
    (signal,) = d.consistency
    assert (signal.name, round(signal.value, 3), signal.detail) == (
        "caption_ocr_similarity",
        0.25,
        "d",
    )
    assert list(signal.modalities) == [taxonomy_pb2.MODALITY_TEXT, taxonomy_pb2.MODALITY_IMAGE]


async def test_pipeline_falls_back_on_a_response_it_cannot_read() -> None:
    server, port = await _serving(_AnsweringConsistency(999, 0.99))
    try:
        d = await _decide_via(f"127.0.0.1:{port}")
    finally:
        await server.stop(None)
    assert "consistency service unavailable: local max fusion" in d.reasons
    assert [(c.category, round(c.score, 3)) for c in d.categories] == [(Category.HATE.proto, 0.3)]
