"""The text ClassifierService as the combination scorer: an item's texts read together are one
text part of one Classify call, sent through the shared remote text client
(core.remote_text: channel options, grpc retries, tracing, the coalescing client, so the
combinations of concurrent Checks go out as ClassifyBatch calls, and its status-code mapping).

The domain errors it raises (InvalidInput when the text service refuses the texts together,
e.g. over its length limit; NotReady when it cannot answer, DeadlineExceeded too on a timeout)
become an explained skip of the combination check in the checker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import grpc

from crossguard.core import remote_text
from crossguard.core.errors import CrossguardError
from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.taxonomy import Category

LABEL = "combination"
TEXTS = "the item's texts read together"


def error_for(endpoint: str, exc: grpc.aio.AioRpcError) -> CrossguardError:
    """The domain error for a failed call (core.remote_text.error_for)."""
    return remote_text.error_for(endpoint, exc, label=LABEL, texts=TEXTS)


class TextServiceScorer(remote_text.RemoteTextScorer):
    def __init__(
        self,
        endpoint: str,
        deadline_s: float,
        *,
        channels: ChannelPool,
        retries: int,
    ) -> None:
        super().__init__(
            endpoint,
            deadline_s=deadline_s,
            channels=channels,
            retries=retries,
            label=LABEL,
            texts=TEXTS,
        )

    async def _one(self, content_id: str, text: str) -> dict[Category, float]:
        result = await self.classify_texts(content_id, [("combined", text)])
        return {s.category: s.score for s in result.scores}

    async def score(
        self, content_ids: Sequence[str], texts: Sequence[str]
    ) -> list[dict[Category, float]]:
        return list(
            await asyncio.gather(
                *(self._one(c, t) for c, t in zip(content_ids, texts, strict=True))
            )
        )
