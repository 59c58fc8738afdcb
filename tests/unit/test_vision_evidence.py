"""The vision result as the template's ClassifierResult: scores, evidence order and cap, and
the evidence's model and frame surviving the proto round trip; the image part parser."""

from __future__ import annotations

import dataclasses

import pytest

from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.media import MediaSettings
from crossguard.core.proto_convert import result_from_proto, result_to_proto
from crossguard.core.results import (
    DerivedTextEvidence,
    HashMatchEvidence,
    ImageRegion,
    ImageRegionEvidence,
)
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, content_pb2
from crossguard.vision.evidence import HashMatch, ImageFindings, ModelSignal, OcrFrameText
from crossguard.vision.ocr import OcrLine
from crossguard.vision.service import OCR_TEXT_MODEL, VisionResult
from crossguard.vision.servicer import image_media_settings, request_parts
from crossguard.vision.settings import DecodeLimits

pytestmark = pytest.mark.unit


def findings() -> ImageFindings:
    return ImageFindings(
        part_id="img",
        format="GIF",
        width=320,
        height=200,
        n_frames=6,
        frames_scored=[0, 2, 5],
        signals=[
            ModelSignal("open-nsfw", "1", {Category.SEXUAL: 0.12}, 2),
            ModelSignal(OCR_TEXT_MODEL, "pp-ocr:4+text-heads:3", {Category.VIOLENCE: 0.91}, 5),
        ],
        ocr=[
            OcrFrameText(
                5,
                [
                    OcrLine("see you soon", 0.99, 5, 5, 100, 20),
                    OcrLine("or I kill you", 0.98, 5, 40, 110, 20),
                ],
                [(Category.VIOLENCE, [1])],
            )
        ],
        hash_match=HashMatch(
            "bank-a", Category.EXTREMISM, "pdq", 12, 31, "E-7", "ab" * 32, 0, "note"
        ),
    )


def test_scores_take_the_worst_signal_and_a_hash_match_counts_fully() -> None:
    result = VisionResult([findings()], [("open-nsfw", "1")], []).to_classifier_result()
    scores = {s.category: (s.score, s.severity) for s in result.scores}
    assert scores[Category.EXTREMISM] == (1.0, 3)
    assert scores[Category.VIOLENCE] == (pytest.approx(0.91), 3)
    assert scores[Category.SEXUAL][0] == pytest.approx(0.12)
    assert [s.category for s in result.scores][:2] == [Category.EXTREMISM, Category.VIOLENCE]


def test_evidence_order_cap_and_proto_round_trip() -> None:
    result = VisionResult([findings()], [("open-nsfw", "1")], []).to_classifier_result()
    kinds = [type(e) for e in result.evidence]
    assert kinds == [
        HashMatchEvidence,
        DerivedTextEvidence,  # the flagged line
        ImageRegionEvidence,  # open_nsfw on its worst frame
        DerivedTextEvidence,  # the other line
    ]
    flagged = result.evidence[1]
    assert isinstance(flagged, DerivedTextEvidence)
    assert (flagged.text, flagged.category, flagged.weight) == (
        "or I kill you",
        Category.VIOLENCE,
        pytest.approx(0.91),
    )
    assert flagged.location == ImageRegion(5, 40, 110, 20)
    assert (flagged.model, flagged.frame_index) == ("pp-ocr", 5)
    nsfw = result.evidence[2]
    assert isinstance(nsfw, ImageRegionEvidence)
    assert (nsfw.model, nsfw.frame_index, nsfw.region) == (
        "open-nsfw",
        2,
        ImageRegion(0, 0, 320, 200),
    )

    # float32 weights on the wire: compare everything but the weight exactly.
    back = result_from_proto(result_to_proto(result))
    assert [dataclasses.replace(e, weight=0.0) for e in back.evidence] == [
        dataclasses.replace(e, weight=0.0) for e in result.evidence
    ]
    assert [e.weight for e in back.evidence] == pytest.approx([e.weight for e in result.evidence])

    capped = VisionResult([findings()], [], []).to_classifier_result(max_evidence=2)
    assert [type(e) for e in capped.evidence] == [HashMatchEvidence, DerivedTextEvidence]


def _media(data: bytes = b"x", mime: str = "image/png") -> content_pb2.ContentPart:
    return content_pb2.ContentPart(media=content_pb2.Media(mime_type=mime, inline_data=data))


def test_part_parser_reads_media_within_the_image_limit() -> None:
    media = image_media_settings(MediaSettings(), DecodeLimits(max_image_bytes=100))
    assert media.max_bytes == 100
    request = classifier_pb2.ClassifyRequest(content_id="c", parts=[_media(), _media(b"yy")])
    parts = request_parts(request, media)
    assert [(p.part_id, p.data, p.mime_type) for p in parts] == [
        ("0", b"x", "image/png"),
        ("1", b"yy", "image/png"),
    ]
    with pytest.raises(InvalidInput, match="image parts only"):
        request_parts(
            classifier_pb2.ClassifyRequest(parts=[content_pb2.ContentPart(text="hi")]), media
        )
    with pytest.raises(LimitExceeded, match="media_too_large"):
        request_parts(classifier_pb2.ClassifyRequest(parts=[_media(b"z" * 101)]), media)
    by_reference = content_pb2.ContentPart(
        media=content_pb2.Media(mime_type="image/png", uri="https://example.org/a.png")
    )
    with pytest.raises(InvalidInput, match="media_scheme_not_allowed"):
        request_parts(classifier_pb2.ClassifyRequest(parts=[by_reference]), media)
