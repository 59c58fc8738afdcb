"""The task view's audio transcript: every segment with its time, those that overlap flagged
evidence highlighted with the category, and what the size cap left out."""

from __future__ import annotations

import pytest

from crossguard.core.taxonomy import Category
from crossguard.review.evidence import present
from crossguard.v1 import classifier_pb2, content_pb2, decision_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit


def _segment(start_ms: int, end_ms: int, text: str) -> classifier_pb2.TimedText:
    return classifier_pb2.TimedText(
        time_range=classifier_pb2.AudioRange(start_ms=start_ms, end_ms=end_ms), text=text
    )


def test_whole_transcript_with_flagged_segments_highlighted() -> None:
    item = content_pb2.ContentItem(id="c1")
    item.parts.append(
        content_pb2.ContentPart(
            part_id="voice", media=content_pb2.Media(mime_type="audio/wav", uri="file:///v.wav")
        )
    )
    threat = Category.HARASSMENT_THREATENING.proto
    group = decision_pb2.ModalityEvidence(
        modality=taxonomy_pb2.MODALITY_AUDIO,
        evidence=[
            classifier_pb2.Evidence(
                part_id="voice",
                category=threat,
                time_range=classifier_pb2.AudioRange(start_ms=61_000, end_ms=63_500),
                derived_text="I know where you live.",
            )
        ],
        transcripts=[
            classifier_pb2.Transcript(
                part_id="voice",
                language="en",
                # Out of order on purpose: the view sorts by time.
                segments=[
                    _segment(61_000, 63_500, " I know where you live."),
                    _segment(1_200, 2_900, " Hello and welcome."),
                    _segment(70_000, 71_000, " See you."),
                ],
                guards=["repetition"],
                omitted_segments=3,
            )
        ],
    )
    decision = decision_pb2.ModerationDecision(decision_id="d1", evidence=[group])
    (part,) = present(item, decision).parts
    assert part.kind == "audio" and part.language == "en"
    assert [(line.stamp, line.text, line.category) for line in part.transcript] == [
        ("00:01.200–00:02.900", "Hello and welcome.", ""),
        ("01:01.000–01:03.500", "I know where you live.", "harassment/threatening"),
        ("01:10.000–01:11.000", "See you.", ""),
    ]
    assert part.transcript[1].start_ms == 61_000
    assert part.flagged == [("01:01.000–01:03.500", "I know where you live.")]
    assert (part.omitted_segments, part.guards) == (3, ["repetition"])


def test_a_decision_without_transcripts_shows_the_flagged_pieces_only() -> None:
    item = content_pb2.ContentItem(id="c2")
    item.parts.append(
        content_pb2.ContentPart(part_id="voice", media=content_pb2.Media(mime_type="audio/ogg"))
    )
    ev = classifier_pb2.Evidence(
        part_id="voice",
        category=Category.VIOLENCE.proto,
        time_range=classifier_pb2.AudioRange(start_ms=0, end_ms=1000),
        derived_text="kill",
    )
    decision = decision_pb2.ModerationDecision(
        evidence=[
            decision_pb2.ModalityEvidence(modality=taxonomy_pb2.MODALITY_AUDIO, evidence=[ev])
        ]
    )
    (part,) = present(item, decision).parts
    assert part.transcript == [] and part.flagged == [("00:00.000–00:01.000", "kill")]
