"""Score fusion across modalities. Until cross-modal checks land this is a pass-through fusion:
per category, the maximum score over the modalities that produced one (the conservative choice
for safety: any modality can raise a category, none can hide it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crossguard.core.results import ClassifierResult, Modality, Score
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
    best: dict[Category, float] = {}
    per_modality: dict[Category, dict[Modality, float]] = {}
    for result in results:
        for s in result.scores:
            best[s.category] = max(best.get(s.category, 0.0), s.score)
            per_modality.setdefault(s.category, {})[result.modality] = s.score
    fused = [Score(c, v, severity(v)) for c, v in sorted(best.items(), key=lambda kv: kv[0].value)]
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
