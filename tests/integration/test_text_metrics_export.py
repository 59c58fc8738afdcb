"""A text server exports its classifier metrics over OTLP: a real server process (the bench's
constant-model server, which starts in a second and serves through the same code as the real
one) sends them to an OTLP metrics receiver run by the test on a random port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.metrics.v1 import metrics_pb2

from crossguard.core.serving.servicer import CLASSIFY
from crossguard.v1 import classifier_pb2, content_pb2

if TYPE_CHECKING:
    from conftest import GrpcServiceFactory

pytestmark = pytest.mark.integration


class Receiver(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """Keeps every metric it is sent."""

    def __init__(self) -> None:
        self.metrics: list[metrics_pb2.Metric] = []

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: object
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                self.metrics.extend(sm.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()

    def histogram_counts(self, name: str) -> dict[tuple[tuple[str, str], ...], int]:
        """Latest count per attribute set of histogram `name` (cumulative temporality)."""
        counts: dict[tuple[tuple[str, str], ...], int] = {}
        for metric in self.metrics:
            if metric.name == name:
                for point in metric.histogram.data_points:
                    key = tuple(sorted((a.key, a.value.string_value) for a in point.attributes))
                    counts[key] = point.count
        return counts


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.aio.server()
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, port
    await server.stop(0)


async def test_classifier_metrics_reach_an_otlp_receiver(
    start_grpc: GrpcServiceFactory, receiver: tuple[Receiver, int]
) -> None:
    sink, otlp_port = receiver
    # Started off the event loop: the receiver on it must answer the server's exports.
    server = await asyncio.to_thread(
        start_grpc,
        "text-constant",
        "crossguard.bench.grpc_cost",
        CROSSGUARD_TEXT_PROCESSES="1",
        OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{otlp_port}",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRIC_EXPORT_INTERVAL="200",
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            classify = channel.unary_unary(CLASSIFY)
            good = classifier_pb2.ClassifyRequest(
                content_id="m1", parts=[content_pb2.ContentPart(text="hello there")]
            )
            for _ in range(3):
                await classify(good.SerializeToString(), timeout=10)
            empty = classifier_pb2.ClassifyRequest(
                content_id="m2", parts=[content_pb2.ContentPart(text="   ")]
            )
            media = classifier_pb2.ClassifyRequest(
                content_id="m3",
                parts=[content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png"))],
            )
            not_utf8 = (
                classifier_pb2.ClassifyRequest(
                    content_id="m4", parts=[content_pb2.ContentPart(text="Z")]
                )
                .SerializeToString()
                .replace(b"Z", b"\xff")
            )
            # Rejected by the classifier, by the servicer, and before parsing.
            for bad in (empty.SerializeToString(), media.SerializeToString(), not_utf8):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await classify(bad, timeout=10)
                assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        want = {
            (("modality", "text"), ("outcome", "ok")): 3,
            (("modality", "text"), ("outcome", "invalid")): 3,
        }
        for _ in range(100):  # exports every 200 ms
            if sink.histogram_counts("crossguard.classifier.duration") == want:
                break
            await asyncio.sleep(0.1)
        assert sink.histogram_counts("crossguard.classifier.duration") == want
        sizes = sink.histogram_counts("crossguard.classifier.batch.size")
        assert list(sizes) == [(("modality", "text"),)] and 1 <= sizes[(("modality", "text"),)] <= 3
        assert any(m.name == "crossguard.classifier.queue.depth" for m in sink.metrics)
    finally:
        await asyncio.to_thread(server.stop, 10)
