"""The gRPC edge of every classifier service: ClassifyRequest → the modality's part parser →
its classifier → ClassifyResponse, one per unary Classify call, one per message of a
ClassifyStream, or one result per request of a ClassifyBatch call (each item its response or
its own error).

Thin on purpose: the part parser turns a request's parts into the modality's domain input (or
raises InvalidInput / LimitExceeded); everything else is domain code. Domain errors raised here,
by the parser or by the classifier are mapped to status codes by
core.grpc_server.ErrorMappingInterceptor (unary), or by the same core.grpc_server.error_status
into each stream message's error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError

from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.grpc_server import ServiceRegistration, error_status
from crossguard.core.ordered_stream import StreamStopped, answer_in_order
from crossguard.core.proto_convert import result_to_proto
from crossguard.core.results import ClassifierResult
from crossguard.core.serving.classifier import BatchItem, Outcome
from crossguard.v1 import classifier_pb2, content_pb2

SERVICE_NAME = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name
CLASSIFY = f"/{SERVICE_NAME}/Classify"
CLASSIFY_STREAM = f"/{SERVICE_NAME}/ClassifyStream"
CLASSIFY_BATCH = f"/{SERVICE_NAME}/ClassifyBatch"
STREAM_STOPPED = (
    "the server is stopping: every request before this status was answered; send the rest "
    "again (another server process or pod will take them)"
)

RequestT = TypeVar("RequestT")
RequestT_contra = TypeVar("RequestT_contra", contravariant=True)

# A modality's part parser: a request's parts → the classifier's domain input, or a domain
# error (InvalidInput, LimitExceeded). A coroutine, so that it may do blocking or slow work
# (reading media by reference, decoding) off the event loop, e.g. with asyncio.to_thread.
PartParser = Callable[[classifier_pb2.ClassifyRequest], Awaitable[RequestT]]


class Classifier(Protocol[RequestT_contra]):
    """What the servicer needs of a classifier (crossguard.core.serving.classifier)."""

    @property
    def metrics(self) -> ClassifierMetrics: ...

    async def classify(
        self, content_id: str, request: RequestT_contra, max_evidence: int = 0
    ) -> ClassifierResult: ...

    async def classify_batch(
        self, items: Sequence[BatchItem[RequestT_contra]]
    ) -> list[Outcome]: ...


def part_id(part: content_pb2.ContentPart, index: int) -> str:
    """A part's id; the part's index in the request when it has none."""
    return part.part_id or str(index)


M = TypeVar(
    "M",
    classifier_pb2.ClassifyRequest,
    classifier_pb2.ClassifyStreamRequest,
    classifier_pb2.ClassifyBatchRequest,
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


class ClassifierServicer(Generic[RequestT]):
    """ClassifierService over a classifier and its modality's part parser (registered by
    add_to_server, which lets the servicer parse requests itself). `draining` is set when the
    server starts to stop: open streams then stop reading, answer what they read and end with
    UNAVAILABLE."""

    def __init__(
        self,
        classifier: Classifier[RequestT],
        parse_parts: PartParser[RequestT],
        stream_max_in_flight: int,
        draining: asyncio.Event,
        batch_call_max_items: int = 1024,
    ) -> None:
        self.classifier = classifier
        self.parse_parts = parse_parts
        self.stream_max_in_flight = stream_max_in_flight
        self.draining = draining
        self.batch_call_max_items = batch_call_max_items

    async def classify(
        self, request: classifier_pb2.ClassifyRequest
    ) -> classifier_pb2.ClassifyResponse:
        with self.classifier.metrics.rejections():
            parsed = await self.parse_parts(request)
        result = await self.classifier.classify(
            request.content_id, parsed, int(request.max_evidence)
        )
        return result_to_proto(result)

    async def classify_bytes(self, raw: bytes, context: Any) -> classifier_pb2.ClassifyResponse:
        """Classify: the unary call, from its wire bytes (see parse)."""
        with self.classifier.metrics.rejections():
            request = parse(classifier_pb2.ClassifyRequest, raw)
        return await self.classify(request)

    async def classify_batch(
        self, batch: classifier_pb2.ClassifyBatchRequest
    ) -> classifier_pb2.ClassifyBatchResponse:
        """ClassifyBatch: every request parsed and classified, each answered with its response
        or its own error; only a batch over the item limit fails as a whole."""
        requests = batch.requests
        if len(requests) > self.batch_call_max_items:
            raise LimitExceeded(
                f"batch has {len(requests)} requests; the limit is {self.batch_call_max_items} "
                "per ClassifyBatch call (<PREFIX>BATCH_CALL_MAX_ITEMS of the service)"
            )
        # Parsers may work off the event loop (media): run them concurrently.
        parsed = await asyncio.gather(
            *(self._parse_item(r) for r in requests), return_exceptions=True
        )
        items: list[BatchItem[RequestT]] = []
        for request, parts in zip(requests, parsed, strict=True):
            if isinstance(parts, BaseException):
                continue
            items.append(BatchItem(request.content_id, parts, int(request.max_evidence)))
        outcomes = iter(await self.classifier.classify_batch(items) if items else [])
        results = []
        for request, parts in zip(requests, parsed, strict=True):
            outcome = parts if isinstance(parts, BaseException) else next(outcomes)
            results.append(_batch_result(request.content_id, outcome))
        return classifier_pb2.ClassifyBatchResponse(results=results)

    async def _parse_item(self, request: classifier_pb2.ClassifyRequest) -> RequestT:
        with self.classifier.metrics.rejections():
            return await self.parse_parts(request)

    async def classify_batch_bytes(
        self, raw: bytes, context: Any
    ) -> classifier_pb2.ClassifyBatchResponse:
        """ClassifyBatch, from its wire bytes (see parse)."""
        with self.classifier.metrics.rejections():
            batch = parse(classifier_pb2.ClassifyBatchRequest, raw)
        return await self.classify_batch(batch)

    async def classify_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]:
        """ClassifyStream: every request answered in order, up to stream_max_in_flight of them
        in the classifier at once, each failure answered as that request's error. Errors that
        end the stream are mapped here (ErrorMappingInterceptor maps unary calls only)."""
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


def _batch_result(
    content_id: str, outcome: ClassifierResult | BaseException
) -> classifier_pb2.ClassifyBatchResult:
    if isinstance(outcome, ClassifierResult):
        return classifier_pb2.ClassifyBatchResult(
            content_id=content_id, response=result_to_proto(outcome)
        )
    code, message = error_status(outcome, CLASSIFY_BATCH, content_id)
    return classifier_pb2.ClassifyBatchResult(
        content_id=content_id,
        error=classifier_pb2.ClassifyError(code=code.value[0], message=message),
    )


class ClassifierHandlers(Protocol):
    """The ClassifierService methods as add_to_server mounts them (requests as wire bytes)."""

    def classify_bytes(
        self, raw: bytes, context: Any
    ) -> Awaitable[classifier_pb2.ClassifyResponse]: ...

    def classify_stream(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[classifier_pb2.ClassifyStreamResponse]: ...

    def classify_batch_bytes(
        self, raw: bytes, context: Any
    ) -> Awaitable[classifier_pb2.ClassifyBatchResponse]: ...


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
        "ClassifyBatch": grpc.unary_unary_rpc_method_handler(
            servicer.classify_batch_bytes,
            request_deserializer=None,
            response_serializer=classifier_pb2.ClassifyBatchResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)


def registration(
    classifier: Classifier[RequestT],
    parse_parts: PartParser[RequestT],
    stream_max_in_flight: int,
    draining: asyncio.Event,
    batch_call_max_items: int = 1024,
) -> ServiceRegistration:
    servicer = ClassifierServicer(
        classifier, parse_parts, stream_max_in_flight, draining, batch_call_max_items
    )
    return ServiceRegistration(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: add_to_server(servicer, server),
    )
