from __future__ import annotations

import pytest

from crossguard.consistency.fusion import fuse
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category

pytestmark = pytest.mark.unit


def _result(modality: Modality, **scores: float) -> ClassifierResult:
    return ClassifierResult(
        modality=modality,
        scores=[Score(Category.parse(k.replace("_", "/")), v, 0) for k, v in scores.items()],
    )


def test_fused_score_is_max_over_modalities() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.2, violence=0.9), _result(Modality.IMAGE, hate=0.7)])
    fused = {s.category: s.score for s in out.fused}
    assert fused[Category.HATE] == pytest.approx(0.7)
    assert fused[Category.VIOLENCE] == pytest.approx(0.9)
    assert {s.category: s.severity for s in out.fused}[Category.VIOLENCE] == 3


def test_disagreement_signal_only_for_shared_categories() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.1, sexual=0.3), _result(Modality.IMAGE, hate=0.8)])
    names = {s.name: s for s in out.signals}
    assert set(names) == {"modality_disagreement/hate"}
    assert names["modality_disagreement/hate"].value == pytest.approx(0.7)


def test_no_results_fuses_to_nothing() -> None:
    out = fuse([])
    assert out.fused == [] and out.signals == []
