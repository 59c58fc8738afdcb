"""Image vs caption agreement with CLIP: the vision service returns each image's CLIP image
embedding (ClassifierResult.embeddings); this embeds the caption with the same model's text
tower (crossguard.core.clip_text) and compares them. Images embedded by another model (name or
version) are not comparable and are left out."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from crossguard.consistency.embedding import similarity
from crossguard.consistency.fusion import ImageCaption
from crossguard.core.errors import ModelError
from crossguard.core.results import PartEmbedding


class TextEmbedder(Protocol):
    """What the scorer needs of crossguard.core.clip_text.ClipTextEncoder."""

    model: tuple[str, str]

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


class ClipCaptionScorer:
    """`agreement(images, caption, caption_part_ids)` -> ImageCaption, or None when no image
    was embedded by this model. A ModelError when an embedding's size does not match the text
    tower's (a mis-configured model pair)."""

    def __init__(self, encoder: TextEmbedder) -> None:
        self.encoder = encoder
        self.model = encoder.model

    def comparable(self, images: Sequence[PartEmbedding]) -> list[PartEmbedding]:
        return [e for e in images if e.model == self.model]

    async def agreement(
        self,
        images: Sequence[PartEmbedding],
        caption: str,
        caption_part_ids: Sequence[str] = (),
    ) -> ImageCaption | None:
        mine = self.comparable(images)
        if not mine or not caption.strip():
            return None
        text = (await asyncio.to_thread(self.encoder.embed, [caption]))[0]
        per_image: list[tuple[str, float]] = []
        for e in mine:
            vector = np.asarray(e.vector, dtype=np.float32)
            if vector.shape != text.shape:
                raise ModelError(
                    f"image {e.part_id}'s {e.model[0]} embedding has {vector.size} dimensions; "
                    f"the text tower's has {text.size}"
                )
            per_image.append((e.part_id, similarity(vector, text)))
        return ImageCaption(self.model, tuple(per_image), tuple(caption_part_ids))

    def close(self) -> None:
        self.encoder.close()
