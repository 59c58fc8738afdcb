"""gRPC clients for the classifier and consistency services: the pipeline's edge. Responses are
converted to domain types here (core.proto_convert), once; the rest of the pipeline never sees
a ClassifyResponse.

Channels, retries, tracing and the coalescing classifier client come from the shared
crossguard.core.grpc_channels.ChannelPool (the consistency service's text client uses it too).
"""

from __future__ import annotations

import grpc

from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.proto_convert import result_from_proto, result_to_proto, score_from_proto
from crossguard.core.results import ClassifierResult
from crossguard.pipeline.signals import Consistency
from crossguard.policy.proto import context_from_protos
from crossguard.v1 import (
    classifier_pb2,
    consistency_pb2,
    consistency_pb2_grpc,
    content_pb2,
)

CONSISTENCY_SERVICE = "crossguard.v1.ConsistencyService"

_REASONS = {
    grpc.StatusCode.UNAVAILABLE: "unavailable",
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline_exceeded",
    grpc.StatusCode.INVALID_ARGUMENT: "invalid_input",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "overloaded",
    grpc.StatusCode.FAILED_PRECONDITION: "not_ready",
    grpc.StatusCode.UNIMPLEMENTED: "unimplemented",
    grpc.StatusCode.CANCELLED: "cancelled",
}


def reason_for(code: grpc.StatusCode | None) -> str:
    """Machine-readable missing-signal reason for a gRPC status."""
    if code is None:
        return "error"
    return _REASONS.get(code, "error")


class CallFailed(Exception):
    """A service call that gave no usable answer: `reason` is machine-readable (a gRPC status
    as reason_for names it, or "bad_response" for an answer that does not convert)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ServiceClients:
    """Classifier and consistency calls over a ChannelPool, answering domain types."""

    def __init__(self, channels: ChannelPool) -> None:
        self.channels = channels

    async def classify(
        self,
        endpoint: str,
        request: classifier_pb2.ClassifyRequest,
        *,
        retries: int,
        timeout_s: float,
    ) -> ClassifierResult:
        stub = self.channels.classifier(endpoint, retries)
        try:
            response: classifier_pb2.ClassifyResponse = await stub.Classify(
                request, timeout=timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise CallFailed(reason_for(exc.code()), exc.details() or "") from exc
        try:
            return result_from_proto(response)
        except ValueError as exc:
            raise CallFailed("bad_response", str(exc)) from exc

    async def check(
        self,
        endpoint: str,
        item: content_pb2.ContentItem,
        results: list[ClassifierResult],
        *,
        retries: int,
        timeout_s: float,
    ) -> Consistency:
        stub = self.channels.stub(
            endpoint, CONSISTENCY_SERVICE, retries, consistency_pb2_grpc.ConsistencyServiceStub
        )
        request = consistency_pb2.CheckRequest(
            item=item, responses=[result_to_proto(r) for r in results]
        )
        try:
            response: consistency_pb2.CheckResponse = await stub.Check(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise CallFailed(reason_for(exc.code()), exc.details() or "") from exc
        try:
            fused = [score_from_proto(s) for s in response.fused_scores]
        except ValueError as exc:
            raise CallFailed("bad_response", str(exc)) from exc
        return Consistency(
            fused=fused,
            context=context_from_protos(response, locale=item.locale),
            models=[(m.name, m.version) for m in response.models],
            explanation=response.explanation,
        )

    async def close(self) -> None:
        await self.channels.close()
