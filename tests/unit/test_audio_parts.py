"""The audio part parser, the packed-time map and evidence conversion (plain calls, no I/O)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from crossguard.audio.asr import GAP_SECONDS, pack_spans, split_by_span
from crossguard.audio.decode import AudioInfo
from crossguard.audio.model import AudioAnalysis, AudioEvidence
from crossguard.audio.service import evidence_of
from crossguard.audio.servicer import check_parts, read_part
from crossguard.audio.tagger import parse_labels
from crossguard.audio.vad import SAMPLE_RATE, SpeechSpan
from crossguard.core.errors import InvalidInput, ModelError
from crossguard.core.media import MediaSettings, MediaTooLarge
from crossguard.core.proto_convert import result_from_proto, result_to_proto
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
from crossguard.v1 import classifier_pb2, content_pb2

pytestmark = pytest.mark.unit


def _request(*parts: content_pb2.ContentPart) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(content_id="c", parts=list(parts))


def _media(mime: str, data: bytes = b"RIFF", pid: str = "") -> content_pb2.ContentPart:
    return content_pb2.ContentPart(
        part_id=pid, media=content_pb2.Media(mime_type=mime, inline_data=data)
    )


def test_parser_takes_audio_parts_with_ids() -> None:
    parts = check_parts(
        _request(_media("audio/wav", b"a", "voice"), _media("audio/ogg; codecs=opus", b"b"))
    )
    assert [(pid, m.inline_data) for pid, m in parts] == [("voice", b"a"), ("1", b"b")]
    limits = MediaSettings(max_bytes=4)
    assert read_part("voice", parts[0][1], limits).data == b"a"
    with pytest.raises(MediaTooLarge, match="part 'voice'"):
        read_part("voice", content_pb2.Media(inline_data=b"12345"), limits)


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (content_pb2.ContentPart(part_id="t", text="hi"), "audio parts only"),
        (_media("image/png"), "media type 'image/png'"),
        (content_pb2.ContentPart(part_id="n"), "neither text nor media"),
    ],
)
def test_parser_refuses_what_it_cannot_take(part: content_pb2.ContentPart, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_parts(_request(part))


def test_time_map_puts_whisper_times_back_on_the_part_clock() -> None:
    spans = [
        SpeechSpan(2 * SAMPLE_RATE, 5 * SAMPLE_RATE),
        SpeechSpan(40 * SAMPLE_RATE, 42 * SAMPLE_RATE),
    ]
    pieces = [(s, np.ones(s.end - s.start, dtype=np.float32)) for s in spans]
    packed, timemap = pack_spans(pieces)
    assert len(packed) == (3 + 2 + GAP_SECONDS) * SAMPLE_RATE
    assert packed[3 * SAMPLE_RATE : int((3 + GAP_SECONDS) * SAMPLE_RATE)].max() == 0.0
    second = 3 + GAP_SECONDS  # where the second span starts in the packed audio
    assert timemap.segment(0.0, 3.0) == (2.0, 5.0)
    assert timemap.segment(second + 0.5, second + 2.0) == (40.5, 42.0)
    # Whisper starting the next segment where the previous ended (end of span 0) is moved to
    # the next span; an end in the gap stays with the span before it.
    assert timemap.segment(2.9, second + 1.0) == (40.0, 41.0)
    assert timemap.segment(1.0, 3.2) == (3.0, 5.0)


def test_evidence_kinds() -> None:
    analysis = AudioAnalysis(
        part_id="a",
        info=AudioInfo("WAV", "PCM_16", 16_000, 1, 3.0),
        seconds=3.0,
        speech_seconds=2.0,
        segments=[],
        language="en",
        language_probability=0.9,
        scores={Category.VIOLENCE: 0.9},
        evidence=[
            AudioEvidence("a", Category.VIOLENCE, 0.9, 0.25, 2.5, "I will hurt you"),
            AudioEvidence("a", Category.VIOLENCE, 0.7, 1.0, 2.0, "event: Gunshot, gunfire"),
        ],
    )
    assert evidence_of(analysis) == [
        DerivedTextEvidence("a", Category.VIOLENCE, 0.9, "I will hurt you", AudioRange(250, 2500)),
        AudioRangeEvidence("a", Category.VIOLENCE, 0.7, AudioRange(1000, 2000)),
    ]


def test_tagger_label_file() -> None:
    labels = parse_labels("Speech\nGunshot, gunfire\tviolence\n\n", "labels.txt")
    assert [(label.name, label.category) for label in labels] == [
        ("Speech", None),
        ("Gunshot, gunfire", Category.VIOLENCE),
    ]
    with pytest.raises(ModelError, match=r"labels\.txt:1: unknown category"):
        parse_labels("Bang\tnot-a-category\n", "labels.txt")
    with pytest.raises(ModelError, match="no labels"):
        parse_labels("\n", "labels.txt")


def test_transcripts_round_trip_through_the_proto() -> None:
    result = ClassifierResult(
        modality=Modality.AUDIO,
        scores=[Score(Category.VIOLENCE, 0.875, 3)],
        transcripts=[
            Transcript(
                part_id="voice",
                language="en",
                language_probability=0.5,
                segments=[TimedText(AudioRange(250, 2500), "I will hurt you")],
                guards=["repetition"],
                duration_ms=3000,
                speech_ms=2250,
            ),
            Transcript(part_id="noise", language="", language_probability=0.0),
        ],
    )
    assert result_from_proto(result_to_proto(result)) == result


def test_a_segment_over_two_spans_is_split_by_its_word_times() -> None:
    spans = [
        SpeechSpan(2 * SAMPLE_RATE, 5 * SAMPLE_RATE),
        SpeechSpan(40 * SAMPLE_RATE, 42 * SAMPLE_RATE),
    ]
    _, timemap = pack_spans([(s, np.ones(s.end - s.start, dtype=np.float32)) for s in spans])
    second = 3 + GAP_SECONDS
    words = [
        SimpleNamespace(word=" I", start=0.1, end=0.4),
        SimpleNamespace(word=" said", start=0.4, end=2.9),
        SimpleNamespace(word=" hello.", start=3.2, end=second + 0.8),  # starts in the gap
        SimpleNamespace(word=" Bye.", start=second + 1.0, end=second + 1.5),
    ]
    seg = SimpleNamespace(text=" I said hello. Bye.", start=0.0, end=second + 1.5, words=words)
    assert split_by_span(seg, timemap) == [
        (" I said", 2.1, 4.9, 0.5),
        (" hello. Bye.", 40.0, 41.5, 0.5),
    ]
    whole = SimpleNamespace(text=" Hi.", start=0.5, end=2.0, words=None)
    assert split_by_span(whole, timemap) == [(" Hi.", 2.5, 4.0, 1.0)]
