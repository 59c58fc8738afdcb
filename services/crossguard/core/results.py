"""Plain domain types for classifier results, shared by every modality and the pipeline.

Domain code works with these; servicers and clients convert at the edge (core.proto_convert).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from crossguard.core.taxonomy import Category


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


@dataclass(frozen=True)
class Score:
    category: Category
    score: float
    severity: int


@dataclass(frozen=True)
class TextSpanEvidence:
    part_id: str
    category: Category
    weight: float
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class StageTime:
    stage: str
    millis: float


@dataclass(frozen=True)
class ClassifierResult:
    modality: Modality
    scores: list[Score]
    evidence: list[TextSpanEvidence] = field(default_factory=list)
    # (name, version) of every model that contributed.
    models: list[tuple[str, str]] = field(default_factory=list)
    timings: list[StageTime] = field(default_factory=list)

    def score_of(self, category: Category) -> float | None:
        for s in self.scores:
            if s.category == category:
                return s.score
        return None


def max_scores(results: Iterable[ClassifierResult]) -> list[Score]:
    """Pass-through fusion: the highest score per category over all results (any modality can
    raise a category, none can hide it)."""
    best: dict[Category, Score] = {}
    for result in results:
        for s in result.scores:
            current = best.get(s.category)
            if current is None or s.score > current.score:
                best[s.category] = s
    return list(best.values())
