"""The consistency check of one item, over plain domain types: which texts it has, how they
agree (sentence embeddings), how its texts score read together (the text classifier, behind a
protocol), image vs caption (CLIP, behind a protocol, when configured), then fusion.

Knows nothing of gRPC: the servicer converts, and the text classifier client lives in
text_client.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from crossguard.consistency.config import FusionConfig
from crossguard.consistency.embedding import similarity
from crossguard.consistency.framing import Framing, FramingHead
from crossguard.consistency.fusion import FusionInputs, FusionResult, ImageCaption, fuse
from crossguard.consistency.parts import TextKind, combined_text, text_views
from crossguard.core.batcher import MicroBatcher
from crossguard.core.errors import CrossguardError, InvalidInput
from crossguard.core.results import ClassifierResult, Modality, PartEmbedding
from crossguard.core.taxonomy import Category

log = logging.getLogger(__name__)


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised sentence embeddings [n, dim] (blocking)."""
        ...


class CombinationScorer(Protocol):
    async def score(
        self, content_ids: Sequence[str], texts: Sequence[str]
    ) -> list[dict[Category, float]]:
        """Category scores of each text (one per content id), as the text classifier answers;
        a CrossguardError when it cannot."""
        ...


class ImageCaptionScorer(Protocol):
    """Image vs caption agreement (crossguard.consistency.clip_caption.ClipCaptionScorer): the
    images' embeddings (from the vision service's results) against the caption, or None when
    none of them is comparable."""

    model: tuple[str, str]

    def comparable(self, images: Sequence[PartEmbedding]) -> list[PartEmbedding]: ...

    async def agreement(
        self,
        images: Sequence[PartEmbedding],
        caption: str,
        caption_part_ids: Sequence[str] = (),
    ) -> ImageCaption | None: ...


@dataclass(frozen=True)
class CheckInput:
    content_id: str
    # (part id, text) of the item's text parts.
    captions: Sequence[tuple[str, str]]
    results: Sequence[ClassifierResult]
    # Modalities the item has parts of (those without a result count as missing).
    present: Sequence[Modality] = ()


class ConsistencyChecker:
    def __init__(
        self,
        config: FusionConfig,
        *,
        embedder: Embedder | None = None,
        combiner: CombinationScorer | None = None,
        image_caption: ImageCaptionScorer | None = None,
        framing: FramingHead | None = None,
        max_text_chars: int = 6000,
        max_results: int = 16,
        embed_max_batch: int = 32,
    ) -> None:
        self.config = config
        self.embedder = embedder
        # Concurrent checks' texts share encoder calls (one thread, as the model is blocking).
        self._embeddings: MicroBatcher[str, np.ndarray] | None = (
            MicroBatcher(
                lambda texts: list(embedder.embed(texts)),
                max_batch=embed_max_batch,
                max_delay=0.002,
                name="consistency-embed",
            )
            if embedder is not None
            else None
        )
        self.combiner = combiner
        self.image_caption = image_caption
        # Reads the agreement embeddings, so it needs the embedder.
        self.framing = framing if embedder is not None else None
        self.max_text_chars = max_text_chars
        self.max_results = max_results

    async def _embed(self, texts: list[str]) -> np.ndarray:
        assert self._embeddings is not None
        return np.stack(await self._embeddings.submit_many(texts))

    async def close(self) -> None:
        if self._embeddings is not None:
            await self._embeddings.stop()

    async def check(self, item: CheckInput) -> FusionResult:
        if len(item.results) > self.max_results:
            raise InvalidInput(
                f"{len(item.results)} classifier responses; the limit is {self.max_results} "
                "(CROSSGUARD_CONSISTENCY_MAX_RESPONSES)"
            )
        views = text_views(item.captions, item.results, self.max_text_chars)
        answered = {r.modality for r in item.results}
        missing = sorted(set(item.present) - answered, key=lambda m: m.value)
        notes: list[str] = []

        agreement: dict[tuple[TextKind, TextKind], float] = {}
        combined: Mapping[Category, float] | None = None
        image_caption: ImageCaption | None = None
        framing: Framing | None = None
        jobs: list[asyncio.Future[object]] = []
        if self._embeddings is not None and len(views) >= 2:
            jobs.append(asyncio.ensure_future(self._embed([v.text for v in views])))
        if self.combiner is not None and len(views) >= 2:
            jobs.append(
                asyncio.ensure_future(
                    self.combiner.score([f"{item.content_id}#combined"], [combined_text(views)])
                )
            )
        captions = [v for v in views if v.kind == TextKind.CAPTION]
        embedded = [e for r in item.results if r.modality == Modality.IMAGE for e in r.embeddings]
        if self.image_caption is not None and embedded and captions:
            if self.image_caption.comparable(embedded):
                jobs.append(
                    asyncio.ensure_future(
                        self.image_caption.agreement(
                            embedded, captions[0].text, captions[0].part_ids
                        )
                    )
                )
            else:
                got = sorted({f"{n}:{v}" for n, v in (e.model for e in embedded)})
                want = ":".join(self.image_caption.model)
                notes.append(
                    f"image vs caption skipped: the images were embedded by {', '.join(got)}, "
                    f"not {want}"
                )
        outcomes = await asyncio.gather(*jobs, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, np.ndarray):
                for i in range(len(views)):
                    for j in range(i + 1, len(views)):
                        key = (views[i].kind, views[j].kind)
                        agreement[key] = similarity(outcome[i], outcome[j])
                if self.framing is not None:
                    framing = self.framing.framing([v.kind for v in views], outcome)
            elif isinstance(outcome, list):
                combined = outcome[0]
            elif isinstance(outcome, ImageCaption):
                image_caption = outcome
            elif isinstance(outcome, CrossguardError):
                # The item is still fused, without that check; the explanation says so.
                notes.append(f"a consistency check was skipped: {outcome}")
            elif isinstance(outcome, BaseException):
                log.error(
                    "consistency check failed",
                    exc_info=outcome,
                    extra={"content_id": item.content_id},
                )
                notes.append("a consistency check was skipped: internal error")

        result = fuse(
            FusionInputs(
                results=item.results,
                views=views,
                combined=combined,
                agreement=agreement,
                image_caption=image_caption,
                missing=missing,
                framing=framing,
            ),
            self.config,
        )
        if notes:
            result = replace(result, explanation="; ".join([result.explanation, *notes]))
        return result
