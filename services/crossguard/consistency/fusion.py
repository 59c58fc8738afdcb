"""Score fusion across modalities. Until cross-modal checks land this is pass-through fusion
(core.results.max_scores) plus a disagreement signal per category scored by several modalities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossguard.core.results import ClassifierResult, Modality, Score, max_scores
from crossguard.core.taxonomy import Category, severity

FUSION_NAME = "max-fusion"
FUSION_VERSION = "1"


@dataclass(frozen=True)
class Signal:
    name: str
    value: float
    modalities: tuple[Modality, ...]
    detail: str = ""


@dataclass(frozen=True)
class FusionResult:
    fused: list[Score]
    signals: list[Signal]


def fuse(results: Sequence[ClassifierResult]) -> FusionResult:
    per_modality: dict[Category, dict[Modality, float]] = {}
    for result in results:
        for s in result.scores:
            per_modality.setdefault(s.category, {})[result.modality] = s.score
    fused = [
        Score(s.category, s.score, severity(s.score))
        for s in sorted(max_scores(results), key=lambda s: s.category.value)
    ]
    signals: list[Signal] = []
    # Modalities that disagree on a category are worth a reviewer's attention.
    for category, by_mod in sorted(per_modality.items(), key=lambda kv: kv[0].value):
        if len(by_mod) < 2:
            continue
        spread = max(by_mod.values()) - min(by_mod.values())
        signals.append(
            Signal(
                name=f"modality_disagreement/{category.value}",
                value=spread,
                modalities=tuple(sorted(by_mod, key=lambda m: m.value)),
                detail=", ".join(f"{m.value}={v:.2f}" for m, v in sorted(by_mod.items())),
            )
        )
    return FusionResult(fused=fused, signals=signals)
