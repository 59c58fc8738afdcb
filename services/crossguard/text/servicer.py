"""gRPC edge of the text service: ClassifyRequest → TextClassifier → ClassifyResponse.

Thin on purpose: proto ↔ domain conversion only. Domain errors raised here or by the classifier
are mapped to status codes by core.grpc_server.ErrorMappingInterceptor.
"""

from __future__ import annotations

import grpc

from crossguard.core.errors import InvalidInput
from crossguard.core.grpc_server import ServiceRegistration
from crossguard.core.proto_convert import result_to_proto
from crossguard.text.service import TextClassifier
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name


def request_parts(request: classifier_pb2.ClassifyRequest) -> list[tuple[str, str]]:
    """(part_id, text) pairs of a request; part ids default to the part's index."""
    parts: list[tuple[str, str]] = []
    for index, part in enumerate(request.parts):
        kind = part.WhichOneof("kind")
        part_id = part.part_id or str(index)
        if kind == "text":
            parts.append((part_id, part.text))
        elif kind == "media":
            raise InvalidInput(
                f"part {part_id!r} is media ({part.media.mime_type or 'unknown type'}); the text "
                "service takes text parts only: send media to the vision or audio service"
            )
        else:
            raise InvalidInput(f"part {part_id!r} has neither text nor media")
    return parts


class TextClassifierServicer(classifier_pb2_grpc.ClassifierServiceServicer):
    def __init__(self, classifier: TextClassifier) -> None:
        self.classifier = classifier

    async def Classify(
        self,
        request: classifier_pb2.ClassifyRequest,
        context: grpc.aio.ServicerContext[
            classifier_pb2.ClassifyRequest, classifier_pb2.ClassifyResponse
        ],
    ) -> classifier_pb2.ClassifyResponse:
        result = await self.classifier.classify(
            request.content_id, request_parts(request), int(request.max_evidence)
        )
        return result_to_proto(result)


def registration(classifier: TextClassifier) -> ServiceRegistration:
    servicer = TextClassifierServicer(classifier)
    return ServiceRegistration(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(
            servicer, server
        ),
    )
