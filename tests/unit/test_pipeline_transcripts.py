"""The audio transcripts a decision carries: whole, or capped with the flagged segments kept
first, in time order, with the count of what was left out."""

from __future__ import annotations

import pytest

from crossguard.core.results import (
    AudioRange,
    AudioRangeEvidence,
    ClassifierResult,
    DerivedTextEvidence,
    Modality,
    Score,
    TimedText,
    Transcript,
)
from crossguard.core.taxonomy import Category
from crossguard.pipeline.assemble import modality_evidence
from crossguard.pipeline.transcripts import capped_transcripts

pytestmark = pytest.mark.unit


def _transcript(part_id: str, texts: list[str], step_ms: int = 2000) -> Transcript:
    return Transcript(
        part_id,
        "en",
        0.98,
        [
            TimedText(AudioRange(i * step_ms, i * step_ms + step_ms - 100), t)
            for i, t in enumerate(texts)
        ],
        guards=["repetition"],
        duration_ms=len(texts) * step_ms,
        speech_ms=len(texts) * (step_ms - 100),
    )


SPEECH = ["Good evening everyone.", "Welcome to the stream.", "I will kill you.", "Bye now."]


def test_under_the_cap_every_segment_travels_with_its_times() -> None:
    (out,) = capped_transcripts([_transcript("voice", SPEECH)], [], 10_000)
    assert [s.text for s in out.segments] == SPEECH
    assert [(s.time_range.start_ms, s.time_range.end_ms) for s in out.segments][2] == (4000, 5900)
    assert (out.part_id, out.language, out.omitted_segments) == ("voice", "en", 0)
    assert list(out.guards) == ["repetition"] and out.duration_ms == 8000


def test_the_cap_keeps_flagged_segments_first_then_time_order() -> None:
    flagged = DerivedTextEvidence(
        "voice", Category.VIOLENCE, 0.9, "I will kill you.", AudioRange(4100, 5800)
    )
    budget = len(SPEECH[2]) + len(SPEECH[0])  # room for the flagged one and one more
    (out,) = capped_transcripts([_transcript("voice", SPEECH)], [flagged], budget)
    assert [s.text for s in out.segments] == [SPEECH[0], SPEECH[2]]  # in time order
    assert out.omitted_segments == 2
    # A range from the event tagger counts as flagged too; other parts' ranges do not.
    tagged = AudioRangeEvidence("voice", Category.VIOLENCE, 0.7, AudioRange(6000, 6500))
    other = AudioRangeEvidence("other", Category.VIOLENCE, 0.7, AudioRange(0, 100))
    (out,) = capped_transcripts([_transcript("voice", SPEECH)], [tagged, other], len(SPEECH[3]) + 1)
    assert [s.text for s in out.segments] == [SPEECH[3]]


def test_the_cap_is_over_all_parts_and_zero_carries_none() -> None:
    parts = [_transcript("a", SPEECH[:2]), _transcript("b", SPEECH[2:])]
    out = capped_transcripts(parts, [], len(SPEECH[0]) + len(SPEECH[1]))
    assert [len(t.segments) for t in out] == [2, 0]
    assert [t.omitted_segments for t in out] == [0, 2]
    assert capped_transcripts(parts, [], 0) == []


def test_an_audio_result_without_evidence_still_carries_its_transcript() -> None:
    """An item escalated for another reason: the reviewer still reads what was said."""
    result = ClassifierResult(
        Modality.AUDIO,
        [Score(Category.VIOLENCE, 0.1, 0)],
        transcripts=[_transcript("voice", SPEECH[:2])],
    )
    group = modality_evidence(result, 1000)
    assert group is not None and not group.evidence
    assert [s.text for s in group.transcripts[0].segments] == SPEECH[:2]
    assert modality_evidence(result, 0) is None
    assert modality_evidence(ClassifierResult(Modality.TEXT, []), 1000) is None
