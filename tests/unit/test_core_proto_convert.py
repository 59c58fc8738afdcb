"""Domain results ↔ crossguard.v1 messages (no I/O)."""

from __future__ import annotations

import pytest

from crossguard.core.proto_convert import (
    evidence_from_proto,
    evidence_to_proto,
    result_from_proto,
    result_to_proto,
)
from crossguard.core.results import (
    AudioRange,
    AudioRangeEvidence,
    ClassifierResult,
    DerivedTextEvidence,
    Evidence,
    HashMatchEvidence,
    ImageRegion,
    ImageRegionEvidence,
    Modality,
    Score,
    StageTime,
    TextSpan,
    TextSpanEvidence,
)
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2

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


EVIDENCE_OF_EVERY_KIND = [
    TextSpanEvidence("t", Category.HATE, 0.5, 3, 9, "insult"),
    ImageRegionEvidence("img", Category.VIOLENCE_GRAPHIC, 0.75, ImageRegion(10, 20, 64, 32)),
    AudioRangeEvidence("voice", Category.HARASSMENT, 0.25, AudioRange(1500, 4250)),
    DerivedTextEvidence("img", Category.HATE, 0.625, "text read by OCR"),
    DerivedTextEvidence("img", Category.HATE, 0.5, "text read by OCR", TextSpan(5, 9, "read")),
    DerivedTextEvidence("img", Category.SEXUAL, 0.5, "a sign", ImageRegion(0, 0, 8, 8)),
    DerivedTextEvidence("voice", Category.VIOLENCE, 0.5, "asr words", AudioRange(0, 900)),
    HashMatchEvidence("img", Category.SEXUAL_MINORS, 1.0, "known-bad", 3, "entry-42"),
    HashMatchEvidence("img", Category.SELF_HARM, 1.0, "exact", 0, ""),
]


@pytest.mark.parametrize("evidence", EVIDENCE_OF_EVERY_KIND, ids=lambda e: type(e).__name__)
def test_every_kind_of_evidence_round_trips(evidence: Evidence) -> None:
    message = classifier_pb2.Evidence()
    evidence_to_proto(evidence, message)
    assert evidence_from_proto(message) == evidence
    # And inside a whole response, with the other kinds around it.
    result = ClassifierResult(Modality.IMAGE, [], evidence=list(EVIDENCE_OF_EVERY_KIND))
    assert result_from_proto(result_to_proto(result)).evidence == EVIDENCE_OF_EVERY_KIND


def test_evidence_messages_map_to_their_kind() -> None:
    hate = Category.HATE.proto
    region = classifier_pb2.Evidence(
        part_id="i", category=hate, region=classifier_pb2.ImageRegion(x=1, y=2, width=3, height=4)
    )
    audio = classifier_pb2.Evidence(
        part_id="a", category=hate, time_range=classifier_pb2.AudioRange(start_ms=5, end_ms=6)
    )
    assert evidence_from_proto(region) == ImageRegionEvidence(
        "i", Category.HATE, 0.0, ImageRegion(1, 2, 3, 4)
    )
    assert evidence_from_proto(audio) == AudioRangeEvidence(
        "a", Category.HATE, 0.0, AudioRange(5, 6)
    )
    # A server that sets only the older hash_bank field still gives a hash match.
    legacy = classifier_pb2.Evidence(part_id="i", category=hate, hash_bank="bank")
    assert evidence_from_proto(legacy) == HashMatchEvidence("i", Category.HATE, 0.0, "bank", 0, "")
    # hash_bank is written too, for readers of that field.
    written = classifier_pb2.Evidence()
    evidence_to_proto(EVIDENCE_OF_EVERY_KIND[-2], written)
    assert written.hash_bank == "known-bad" and written.WhichOneof("location") is None


def test_evidence_without_location_derived_text_or_hash_is_an_error() -> None:
    with pytest.raises(ValueError, match="no location"):
        evidence_from_proto(classifier_pb2.Evidence(part_id="p", category=Category.HATE.proto))
