"""Input validation → DLQ reasons."""

from __future__ import annotations

import hashlib

import pytest

from crossguard.core.results import Modality
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import RejectCode, Rejection, validate
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.unit

SETTINGS = PipelineSettings(
    max_item_bytes=10_000, max_parts=3, max_text_chars=50, max_inline_bytes=100, max_id_chars=20
)


def item(*parts: content_pb2.ContentPart, id: str = "c1") -> content_pb2.ContentItem:
    return content_pb2.ContentItem(id=id, tenant="t", surface="comment", parts=list(parts))


def text(t: str, part_id: str = "") -> content_pb2.ContentPart:
    return content_pb2.ContentPart(part_id=part_id, text=t)


def media(mime: str, data: bytes = b"x", sha: str = "", uri: str = "") -> content_pb2.ContentPart:
    m = content_pb2.Media(mime_type=mime, sha256=sha)
    if uri:
        m.uri = uri
    elif data:
        m.inline_data = data
    return content_pb2.ContentPart(media=m)


def code_of(raw: bytes | None) -> str:
    with pytest.raises(Rejection) as info:
        validate(raw, SETTINGS)
    assert info.value.reason
    return info.value.code


def test_valid_item_groups_parts_by_modality() -> None:
    v = validate(
        item(
            text("hi"), media("image/png"), media("audio/wav; codecs=1"), id="c9"
        ).SerializeToString(),
        SETTINGS,
    )
    assert v.content_id == "c9"
    assert {m: len(p) for m, p in v.parts_by_modality.items()} == {
        Modality.TEXT: 1,
        Modality.IMAGE: 1,
        Modality.AUDIO: 1,
    }
    assert [p.part_id for p in v.item.parts] == ["0", "1", "2"]  # defaults to the index
    assert v.item.parts[1].media.sha256 == hashlib.sha256(b"x").hexdigest()
    assert len(v.content_sha256) == 64


def test_content_sha_is_stable_and_content_sensitive() -> None:
    a = validate(item(text("hi")).SerializeToString(), SETTINGS).content_sha256
    b = validate(item(text("hi")).SerializeToString(), SETTINGS).content_sha256
    c = validate(item(text("ho")).SerializeToString(), SETTINGS).content_sha256
    assert a == b != c


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, RejectCode.MALFORMED),
        (b"", RejectCode.MALFORMED),
        (b"\xff\xff\xff garbage", RejectCode.MALFORMED),
        (b"x" * 10_001, RejectCode.OVERSIZED_ITEM),
        (item(text("hi"), id="").SerializeToString(), RejectCode.EMPTY_ID),
        (item(text("hi"), id="   ").SerializeToString(), RejectCode.EMPTY_ID),
        (item(text("hi"), id="x" * 21).SerializeToString(), RejectCode.BAD_ID),
        (item(text("hi"), id="a\nb").SerializeToString(), RejectCode.BAD_ID),
        (item().SerializeToString(), RejectCode.NO_PARTS),
        (item(*[text("a")] * 4).SerializeToString(), RejectCode.TOO_MANY_PARTS),
        (item(content_pb2.ContentPart(part_id="p")).SerializeToString(), RejectCode.EMPTY_PART),
        (item(text("a", "p"), text("b", "p")).SerializeToString(), RejectCode.DUPLICATE_PART_ID),
        (item(text("x" * 51)).SerializeToString(), RejectCode.OVERSIZED_TEXT),
        (item(media("image/png", b"x" * 101)).SerializeToString(), RejectCode.OVERSIZED_MEDIA),
        (item(media("image/png", b"")).SerializeToString(), RejectCode.MISSING_MEDIA),
        (item(media("application/pdf")).SerializeToString(), RejectCode.UNSUPPORTED_MIME),
        (item(media("video/mp4")).SerializeToString(), RejectCode.UNSUPPORTED_MIME),
        (item(media("image/png", sha="00" * 32)).SerializeToString(), RejectCode.SHA256_MISMATCH),
    ],
)
def test_rejections(raw: bytes | None, code: str) -> None:
    assert code_of(raw) == code


def test_uri_media_accepted() -> None:
    v = validate(item(media("image/jpeg", uri="s3://bucket/k")).SerializeToString(), SETTINGS)
    assert Modality.IMAGE in v.parts_by_modality


def test_rejection_carries_content_id() -> None:
    with pytest.raises(Rejection) as info:
        validate(item(media("application/pdf"), id="c7").SerializeToString(), SETTINGS)
    assert info.value.content_id == "c7"
    assert "application/pdf" in info.value.reason
