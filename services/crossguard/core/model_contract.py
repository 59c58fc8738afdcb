"""The contract every served model implements: load, ready, predict(batch), close."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

InT = TypeVar("InT", contravariant=True)
OutT = TypeVar("OutT")


class Model(Protocol, Generic[InT, OutT]):
    name: str
    version: str

    def load(self) -> None:
        """Load weights and create sessions; may be slow, never called at import time."""

    def ready(self) -> bool:
        """True once load() finished and predict() can be called."""

    def predict(self, batch: Sequence[InT]) -> list[OutT]:
        """Score a batch; one output per input, in order. Blocking (run it off the event loop)."""

    def close(self) -> None:
        """Release sessions and memory."""
