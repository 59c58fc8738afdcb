"""Scoring texts with the remote text ClassifierService: the one client for services that
score derived or combined text there (the vision service's OCR text, the consistency
service's texts read together), over core.grpc_channels (channel options, grpc retries of
UNAVAILABLE/RESOURCE_EXHAUSTED within the deadline, tracing, and the coalescing client, so
concurrent callers' texts go out as ClassifyBatch calls).

One status-code mapping for every caller (error_for):
- INVALID_ARGUMENT / OUT_OF_RANGE (the text service refused the texts, e.g. over its length
  limit) → InvalidInput with the server's message;
- DEADLINE_EXCEEDED → TextServiceTimeout, both NotReady and DeadlineExceeded: a server passing
  it on answers UNAVAILABLE (NotReady comes first in core.grpc_server's mapping), as for
  UNAVAILABLE, while a caller may still tell a timeout apart;
- UNAVAILABLE and every other code → NotReady (the text service cannot answer now).
Each message starts with the caller's `label` and names the endpoint (and `hint`, e.g. the
setting that configures it), so the error says which call failed and where to look.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from crossguard.core.errors import CrossguardError, DeadlineExceeded, InvalidInput, NotReady
from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.results import ClassifierResult
from crossguard.v1 import classifier_pb2, content_pb2

_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)


class TextServiceTimeout(NotReady, DeadlineExceeded):
    """The text service did not answer within the call's deadline."""


def error_for(
    endpoint: str, exc: grpc.aio.AioRpcError, *, label: str, texts: str, hint: str = ""
) -> CrossguardError:
    """The domain error for a failed call (see the module docstring); `texts` names what was
    sent ("the OCR text"), `hint` is appended to unavailability messages."""
    code = exc.code()
    details = exc.details() or ""
    if code in _REFUSED:
        return InvalidInput(f"{label}: the text service refused {texts}: {details}")
    what = f"{label}: text service {endpoint}: {code.name} {details}".strip()
    if hint:
        what = f"{what}; {hint}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TextServiceTimeout(what)
    return NotReady(what)


class RemoteTextScorer:
    """`classify_texts(content_id, [(part_id, text), ...])` → the text service's
    ClassifierResult for those parts, one Classify call (coalesced with concurrent ones when
    `channels` batches). Owns `channels`: close() closes them."""

    def __init__(
        self,
        endpoint: str,
        *,
        deadline_s: float,
        channels: ChannelPool,
        retries: int,
        label: str,
        texts: str = "the texts",
        hint: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.deadline_s = deadline_s
        self.channels = channels
        self.retries = retries
        self.label = label
        self.texts = texts
        self.hint = hint

    async def classify_texts(
        self, content_id: str, parts: Sequence[tuple[str, str]]
    ) -> ClassifierResult:
        request = classifier_pb2.ClassifyRequest(
            content_id=content_id,
            parts=[content_pb2.ContentPart(part_id=pid, text=text) for pid, text in parts],
        )
        client = self.channels.classifier(self.endpoint, self.retries)
        try:
            response = await client.Classify(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise error_for(
                self.endpoint, exc, label=self.label, texts=self.texts, hint=self.hint
            ) from exc
        return result_from_proto(response)

    async def close(self) -> None:
        await self.channels.close()
