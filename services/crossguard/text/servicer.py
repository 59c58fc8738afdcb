"""gRPC edge of the text service: ClassifyRequest → TextClassifier → ClassifyResponse, one per
unary Classify call or one per message of a ClassifyStream.

Thin on purpose: proto ↔ domain conversion only. Domain errors raised here or by the classifier
are mapped to status codes by core.grpc_server.ErrorMappingInterceptor (unary), or by the same
core.grpc_server.error_status into each stream message's error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError

from crossguard.core.errors import InvalidInput
from crossguard.core.grpc_server import ServiceRegistration, error_status
from crossguard.core.ordered_stream import StreamStopped, answer_in_order
from crossguard.core.proto_convert import result_to_proto
from crossguard.text.service import TextClassifier
from crossguard.v1 import classifier_pb2

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


M = TypeVar("M", classifier_pb2.ClassifyRequest, classifier_pb2.ClassifyStreamRequest)

CLASSIFY = f"/{SERVICE_NAME}/Classify"
CLASSIFY_STREAM = f"/{SERVICE_NAME}/ClassifyStream"
STREAM_STOPPED = (
    "the server is stopping: every request before this status was answered; send the rest "
    "again (another server process or pod will take them)"
)


def parse(message: type[M], raw: bytes) -> M:
    """A request from its wire bytes, so that one that does not parse (e.g. a text field with
    invalid UTF-8, which proto3 forbids) is INVALID_ARGUMENT with a clear message instead of
    grpc's generic UNKNOWN from a failing deserializer."""
    try:
        return message.FromString(raw)
    except DecodeError as exc:
        raise InvalidInput(
            f"request is not a valid {message.DESCRIPTOR.full_name} ({exc}); text parts must "
            "be valid UTF-8"
        ) from None


class TextClassifierServicer:
    """The text ClassifierService over TextClassifier (registered by add_to_server, which lets
    the servicer parse requests itself). `draining` is set when the server starts to stop:
    open streams then stop reading, answer what they read and end with UNAVAILABLE."""

    def __init__(
        self, classifier: TextClassifier, stream_max_in_flight: int, draining: asyncio.Event
    ) -> None:
        self.classifier = classifier
        self.stream_max_in_flight = stream_max_in_flight
        self.draining = draining

    async def classify(
        self, request: classifier_pb2.ClassifyRequest
    ) -> classifier_pb2.ClassifyResponse:
        with self.classifier.metrics.rejections():
            parts = request_parts(request)
        result = await self.classifier.classify(
            request.content_id, parts, int(request.max_evidence)
        )
        return result_to_proto(result)

    async def classify_bytes(self, raw: bytes, context: Any) -> classifier_pb2.ClassifyResponse:
        """Classify: the unary call, from its wire bytes (see parse)."""
        with self.classifier.metrics.rejections():
            request = parse(classifier_pb2.ClassifyRequest, raw)
        return await self.classify(request)

    async def classify_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """ClassifyStream: every request answered in order, up to stream_max_in_flight of them
        in the batcher at once, each failure answered as that request's error. Errors that end
        the stream are mapped here (ErrorMappingInterceptor maps unary calls only)."""
        answers = answer_in_order(
            requests, self._stream_item, self.stream_max_in_flight, self.draining
        )
        try:
            # aclosing: a client that goes away closes the inner stream (and its work) now,
            # not whenever the garbage collector finalises it.
            async with contextlib.aclosing(answers) as stream:
                async for answer in stream:
                    yield answer
        except StreamStopped:
            await context.abort(grpc.StatusCode.UNAVAILABLE, STREAM_STOPPED)
        except Exception as exc:
            await context.abort(*error_status(exc, CLASSIFY_STREAM))

    async def _stream_item(self, raw: bytes) -> classifier_pb2.ClassifyStreamResponse:
        content_id = ""
        try:
            with self.classifier.metrics.rejections():
                request = parse(classifier_pb2.ClassifyStreamRequest, raw).request
            content_id = request.content_id
            response = await self.classify(request)
        except Exception as exc:
            code, message = error_status(exc, CLASSIFY_STREAM, content_id)
            return classifier_pb2.ClassifyStreamResponse(
                content_id=content_id,
                error=classifier_pb2.ClassifyError(code=code.value[0], message=message),
            )
        return classifier_pb2.ClassifyStreamResponse(content_id=content_id, response=response)


class ClassifierHandlers(Protocol):
    """The ClassifierService methods as add_to_server mounts them (requests as wire bytes)."""

    def classify_bytes(
        self, raw: bytes, context: Any
    ) -> Awaitable[classifier_pb2.ClassifyResponse]: ...

    def classify_stream(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]: ...


def add_to_server(servicer: ClassifierHandlers, server: grpc.aio.Server) -> None:
    """Like the generated add_ClassifierServiceServicer_to_server, but requests are parsed by
    the servicer (see parse)."""
    handlers = {
        "Classify": grpc.unary_unary_rpc_method_handler(
            servicer.classify_bytes,
            request_deserializer=None,
            response_serializer=classifier_pb2.ClassifyResponse.SerializeToString,
        ),
        "ClassifyStream": grpc.stream_stream_rpc_method_handler(
            servicer.classify_stream,
            request_deserializer=None,
            response_serializer=classifier_pb2.ClassifyStreamResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def registration(
    classifier: TextClassifier, stream_max_in_flight: int, draining: asyncio.Event
) -> ServiceRegistration:
    servicer = TextClassifierServicer(classifier, stream_max_in_flight, draining)
    return ServiceRegistration(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: add_to_server(servicer, server),
    )
