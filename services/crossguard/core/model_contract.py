"""The contract every served model implements: what it scores (categories, their thresholds,
the models behind it) and its lifecycle: load, ready, predict(batch), close.

crossguard.core.serving.classifier.BatchedClassifier serves any Model: it loads it off the
event loop, reads categories/thresholds/model_infos once, and feeds `predict` through a
micro-batcher. A modality's model (text: crossguard.text.model.TextModel) implements this.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from crossguard.core.taxonomy import Category

InT = TypeVar("InT", contravariant=True)
OutT = TypeVar("OutT")


class Model(Protocol[InT, OutT]):
    name: str
    version: str

    @property
    def categories(self) -> Sequence[Category]:
        """The categories predict() scores (valid once loaded)."""

    @property
    def thresholds(self) -> Mapping[Category, float]:
        """Decision threshold per category, from the model's manifest (valid once loaded);
        categories without one use the service's default."""

    @property
    def model_infos(self) -> Sequence[tuple[str, str]]:
        """(name, version) of every model behind this one (encoder, heads, ...), reported with
        each result."""

    def load(self) -> None:
        """Load weights and create sessions; may be slow, never called at import time."""

    def ready(self) -> bool:
        """True once load() finished and predict() can be called."""

    def predict(self, batch: Sequence[InT]) -> list[OutT]:
        """Score a batch; one output per input, in order. Blocking (run it off the event loop)."""

    def close(self) -> None:
        """Release sessions and memory."""
