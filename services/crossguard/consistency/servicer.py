"""gRPC ConsistencyService over the fusion domain code."""

from __future__ import annotations

import grpc

from crossguard.consistency.fusion import FUSION_NAME, FUSION_VERSION, fuse
from crossguard.core.proto_convert import modality_to_proto, result_from_proto, score_to_proto
from crossguard.v1 import classifier_pb2, consistency_pb2, consistency_pb2_grpc


class ConsistencyServicer(consistency_pb2_grpc.ConsistencyServiceServicer):
    async def Check(
        self, request: consistency_pb2.CheckRequest, context: grpc.aio.ServicerContext
    ) -> consistency_pb2.CheckResponse:
        result = fuse([result_from_proto(r) for r in request.responses])
        resp = consistency_pb2.CheckResponse()
        resp.fused_scores.extend(score_to_proto(s) for s in result.fused)
        for sig in result.signals:
            resp.signals.append(
                consistency_pb2.ConsistencySignal(
                    name=sig.name,
                    value=sig.value,
                    modalities=[modality_to_proto(m) for m in sig.modalities],
                    detail=sig.detail,
                )
            )
        resp.models.append(classifier_pb2.ModelInfo(name=FUSION_NAME, version=FUSION_VERSION))
        return resp
