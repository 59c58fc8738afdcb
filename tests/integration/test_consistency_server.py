from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossguard.consistency.server import SERVICE_NAME, build_server
from crossguard.core.grpc_server import GrpcServer
from crossguard.core.settings import GrpcServerSettings
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, consistency_pb2, consistency_pb2_grpc, taxonomy_pb2

pytestmark = pytest.mark.integration


@pytest.fixture
async def server() -> AsyncIterator[GrpcServer]:
    srv = build_server(GrpcServerSettings(port=0, grace_seconds=0.5))
    await srv.start()
    yield srv
    await srv.stop()


async def test_check_fuses_over_a_real_server(server: GrpcServer) -> None:
    text = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)
    text.scores.add(category=Category.HATE.proto, score=0.2)
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
    assert status.status == health_pb2.HealthCheckResponse.SERVING
