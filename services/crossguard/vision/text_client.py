"""gRPC client for the text service, used to score OCR text (see crossguard.vision.ocr_text
for why the vision service calls it). UNAVAILABLE and RESOURCE_EXHAUSTED are retried by grpc's
own retry policy within the deadline; a call that still fails raises NotReady, an answer the
text service refused (INVALID_ARGUMENT) raises InvalidInput.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

from crossguard.core.errors import InvalidInput, NotReady
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.results import ClassifierResult
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2

_SERVICE = "crossguard.v1.ClassifierService"


def _service_config(retries: int) -> str:
    method: dict[str, object] = {"name": [{"service": _SERVICE}]}
    if retries > 0:  # grpc refuses a policy of fewer than 2 attempts
        method["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": "0.05s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "RESOURCE_EXHAUSTED"],
        }
    return json.dumps({"methodConfig": [method]})


class GrpcTextScorer:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_seconds: float,
        max_message_bytes: int = 16 * 1024 * 1024,
        retries: int = 2,
    ) -> None:
        self.endpoint = endpoint
        self.timeout_seconds = timeout_seconds
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.service_config", _service_config(retries)),
            ("grpc.enable_retries", 1),
        ]
        self._channel: grpc.aio.Channel | None = None
        self._stub: classifier_pb2_grpc.ClassifierServiceStub | None = None

    def _ensure(self) -> classifier_pb2_grpc.ClassifierServiceStub:
        if self._stub is None:
            self._channel = grpc.aio.insecure_channel(self.endpoint, options=self._options)
            self._stub = classifier_pb2_grpc.ClassifierServiceStub(self._channel)
        return self._stub

    async def classify_texts(
        self, content_id: str, parts: Sequence[tuple[str, str]]
    ) -> ClassifierResult:
        request = classifier_pb2.ClassifyRequest(
            content_id=content_id,
            parts=[content_pb2.ContentPart(part_id=pid, text=text) for pid, text in parts],
        )
        try:
            response = await self._ensure().Classify(request, timeout=self.timeout_seconds)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(f"text service refused the OCR text: {exc.details()}") from None
            raise NotReady(
                f"text service at {self.endpoint} did not score the OCR text "
                f"({exc.code().name}: {exc.details()}); CROSSGUARD_VISION_TEXT_ENDPOINT"
            ) from None
        return result_from_proto(response)

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()
