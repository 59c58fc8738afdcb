"""The text ClassifierService as the combination scorer: an item's texts read together are one
text part of one Classify call, sent through the shared client (core.grpc_channels: channel
options, grpc retries, tracing, and the coalescing client, so the combinations of concurrent
Checks go out as ClassifyBatch calls).

Status codes become domain errors, which the checker turns into an explained skip of the
combination check: INVALID_ARGUMENT (e.g. the texts together are longer than the text service
takes) → InvalidInput; DEADLINE_EXCEEDED → DeadlineExceeded; UNAVAILABLE and the rest →
NotReady."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from crossguard.core.errors import CrossguardError, DeadlineExceeded, InvalidInput, NotReady
from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, content_pb2

_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE)


def error_for(endpoint: str, exc: grpc.aio.AioRpcError) -> CrossguardError:
    """The domain error for a failed call (see the module docstring)."""
    code = exc.code()
    details = exc.details() or ""
    if code in _REFUSED:
        return InvalidInput(
            f"combination: the text service refused the item's texts read together: {details}"
        )
    what = f"combination: text service {endpoint}: {code.name} {details}".strip()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(what)
    return NotReady(what)


class TextServiceScorer:
    def __init__(
        self,
        endpoint: str,
        deadline_s: float,
        *,
        channels: ChannelPool,
        retries: int,
    ) -> None:
        self.endpoint = endpoint
        self.deadline_s = deadline_s
        self.retries = retries
        self.channels = channels

    async def _one(self, content_id: str, text: str) -> dict[Category, float]:
        request = classifier_pb2.ClassifyRequest(
            content_id=content_id, parts=[content_pb2.ContentPart(part_id="combined", text=text)]
        )
        client = self.channels.classifier(self.endpoint, self.retries)
        try:
            response = await client.Classify(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            raise error_for(self.endpoint, exc) from exc
        return {s.category: s.score for s in result_from_proto(response).scores}

    async def score(
        self, content_ids: Sequence[str], texts: Sequence[str]
    ) -> list[dict[Category, float]]:
        return list(
            await asyncio.gather(
                *(self._one(c, t) for c, t in zip(content_ids, texts, strict=True))
            )
        )

    async def close(self) -> None:
        await self.channels.close()
