"""Domain results ↔ crossguard.v1 messages (no I/O)."""

from __future__ import annotations

import pytest

from crossguard.core.proto_convert import result_from_proto, result_to_proto
from crossguard.core.results import (
    ClassifierResult,
    Modality,
    Score,
    StageTime,
    TextSpanEvidence,
)
from crossguard.core.taxonomy import Category

pytestmark = pytest.mark.unit


def test_a_result_round_trips_through_its_message() -> None:
    # Values exact in float32, the wire type of scores and weights.
    result = ClassifierResult(
        modality=Modality.TEXT,
        scores=[Score(Category.HATE, 0.75, 2), Score(Category.SEXUAL, 0.125, 0)],
        evidence=[TextSpanEvidence("p1", Category.HATE, 0.5, 3, 9, "insult")],
        models=[("minilm-l6-encoder", "3"), ("text-heads", "2")],
        timings=[StageTime("prepare", 0.25), StageTime("model", 12.5)],
    )
    message = result_to_proto(result)
    assert [s.category for s in message.scores] == [Category.HATE.proto, Category.SEXUAL.proto]
    assert result_from_proto(message) == result
