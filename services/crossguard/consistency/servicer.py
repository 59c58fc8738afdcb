"""gRPC ConsistencyService over the consistency checker (service.py)."""

from __future__ import annotations

import grpc

from crossguard.consistency.fusion import FusionResult
from crossguard.consistency.service import CheckInput, ConsistencyChecker
from crossguard.core.errors import InvalidInput
from crossguard.core.proto_convert import modality_to_proto, result_from_proto, score_to_proto
from crossguard.core.results import Modality
from crossguard.v1 import (
    classifier_pb2,
    consistency_pb2,
    consistency_pb2_grpc,
    taxonomy_pb2,
)


def check_input(request: consistency_pb2.CheckRequest) -> CheckInput:
    item = request.item
    captions = [
        (p.part_id or str(i), p.text)
        for i, p in enumerate(item.parts)
        if p.WhichOneof("kind") == "text"
    ]
    present: set[Modality] = {Modality.TEXT} if captions else set()
    for p in item.parts:
        if p.WhichOneof("kind") != "media":
            continue
        mime = p.media.mime_type
        if mime.startswith("image/"):
            present.add(Modality.IMAGE)
        elif mime.startswith("audio/"):
            present.add(Modality.AUDIO)
    try:
        results = [result_from_proto(r) for r in request.responses]
    except ValueError as exc:
        raise InvalidInput(f"unreadable classifier response: {exc}") from exc
    return CheckInput(item.id, captions, results, sorted(present))


def response_of(
    result: FusionResult, models: list[tuple[str, str]]
) -> consistency_pb2.CheckResponse:
    resp = consistency_pb2.CheckResponse(explanation=result.explanation)
    resp.fused_scores.extend(score_to_proto(s) for s in result.fused)
    for d in result.details:
        resp.fused.append(
            consistency_pb2.FusedCategory(
                category=d.category.proto,
                score=d.score,
                uncertainty=d.uncertainty,
                explanation=d.explanation,
            )
        )
    for sig in result.signals:
        resp.signals.append(
            consistency_pb2.ConsistencySignal(
                name=sig.name,
                value=sig.value,
                modalities=[modality_to_proto(m) for m in sig.modalities],
                detail=sig.detail,
                part_ids=list(sig.part_ids),
                category=(
                    sig.category.proto
                    if sig.category is not None
                    else taxonomy_pb2.CATEGORY_UNSPECIFIED
                ),
            )
        )
    resp.models.extend(classifier_pb2.ModelInfo(name=n, version=v) for n, v in models)
    return resp


class ConsistencyServicer(consistency_pb2_grpc.ConsistencyServiceServicer):
    def __init__(self, checker: ConsistencyChecker, models: list[tuple[str, str]]) -> None:
        self.checker = checker
        self.models = models

    async def Check(
        self, request: consistency_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> consistency_pb2.CheckResponse:
        result = await self.checker.check(check_input(request))
        return response_of(result, self.models)
