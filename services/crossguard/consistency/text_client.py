"""The text ClassifierService as the combination scorer: an item's texts read together are one
text part of one Classify call. The text service micro-batches concurrent calls into one encoder
pass, so concurrent Checks share encoder batches without a batcher here."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from crossguard.core.errors import DeadlineExceeded, NotReady
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2


class TextServiceScorer:
    def __init__(self, endpoint: str, deadline_s: float, max_message_bytes: int) -> None:
        self.endpoint = endpoint
        self.deadline_s = deadline_s
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel = grpc.aio.insecure_channel(endpoint, options=options)
        self._stub = classifier_pb2_grpc.ClassifierServiceStub(self._channel)

    async def _one(self, content_id: str, text: str) -> dict[Category, float]:
        request = classifier_pb2.ClassifyRequest(
            content_id=content_id, parts=[content_pb2.ContentPart(part_id="combined", text=text)]
        )
        try:
            response = await self._stub.Classify(request, timeout=self.deadline_s)
        except grpc.aio.AioRpcError as exc:
            what = f"text service {self.endpoint}: {exc.code().name} {exc.details() or ''}"
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise DeadlineExceeded(what.strip()) from exc
            raise NotReady(what.strip()) from exc
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
        await self._channel.close()
