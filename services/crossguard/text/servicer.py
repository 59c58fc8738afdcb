"""gRPC edge of the text service: ClassifyRequest → TextClassifier → ClassifyResponse.

Thin on purpose: proto ↔ domain conversion only. Domain errors raised here or by the classifier
are mapped to status codes by core.grpc_server.ErrorMappingInterceptor.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message import DecodeError

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

    async def classify_bytes(self, raw: bytes, context: Any) -> classifier_pb2.ClassifyResponse:
        """Classify from the wire bytes, so that a request that does not parse (e.g. a text
        field with invalid UTF-8, which proto3 forbids) is INVALID_ARGUMENT with a clear
        message instead of grpc's generic UNKNOWN from a failing deserializer."""
        try:
            request = classifier_pb2.ClassifyRequest.FromString(raw)
        except DecodeError as exc:
            raise InvalidInput(
                f"request is not a valid {classifier_pb2.ClassifyRequest.DESCRIPTOR.full_name} "
                f"({exc}); text parts must be valid UTF-8"
            ) from None
        return await self.Classify(request, context)


def add_to_server(servicer: TextClassifierServicer, server: grpc.aio.Server) -> None:
    """Like the generated add_ClassifierServiceServicer_to_server, but the request is parsed
    by the servicer (see classify_bytes)."""
    handlers = {
        "Classify": grpc.unary_unary_rpc_method_handler(
            servicer.classify_bytes,
            request_deserializer=None,
            response_serializer=classifier_pb2.ClassifyResponse.SerializeToString,
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def registration(classifier: TextClassifier) -> ServiceRegistration:
    servicer = TextClassifierServicer(classifier)
    return ServiceRegistration(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: add_to_server(servicer, server),
    )
