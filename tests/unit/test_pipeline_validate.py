"""Input validation → DLQ reasons."""

from __future__ import annotations

import hashlib

import pytest

from crossguard.core.media import MediaReason, MediaSettings
from crossguard.core.results import Modality
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import RejectCode, Rejection, validate
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.unit

SETTINGS = PipelineSettings(
    max_item_bytes=10_000, max_parts=3, max_text_chars=50, max_inline_bytes=100, max_id_chars=20
)
MEDIA = MediaSettings(max_bytes=1000, allowed_schemes="s3,file", file_root="/srv/media")
SHA = "ab" * 32


def item(*parts: content_pb2.ContentPart, id: str = "c1") -> content_pb2.ContentItem:
    return content_pb2.ContentItem(id=id, tenant="t", surface="comment", parts=list(parts))


def text(t: str, part_id: str = "") -> content_pb2.ContentPart:
    return content_pb2.ContentPart(part_id=part_id, text=t)


def media(
    mime: str, data: bytes = b"x", sha: str = "", uri: str = "", size: int = 0
) -> content_pb2.ContentPart:
    m = content_pb2.Media(mime_type=mime, sha256=sha, size=size)
    if uri:
        m.uri = uri
    elif data:
        m.inline_data = data
    return content_pb2.ContentPart(media=m)


def ref(uri: str, sha: str = SHA, size: int = 10) -> content_pb2.ContentPart:
    return media("image/png", uri=uri, sha=sha, size=size)


def code_of(raw: bytes | None) -> str:
    with pytest.raises(Rejection) as info:
        validate(raw, SETTINGS, MEDIA)
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
        (item(media("image/png", b"xy", size=3)).SerializeToString(), MediaReason.SIZE_MISMATCH),
        # references: checked here, fetched and verified by the classifiers
        (item(ref("http://host/a.png")).SerializeToString(), MediaReason.SCHEME_NOT_ALLOWED),
        (item(ref("gs://bucket/a.png")).SerializeToString(), MediaReason.SCHEME_NOT_ALLOWED),
        (item(ref("s3://bucket/k", sha="")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("s3://bucket/k", sha="xyz")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("s3://bucket/k", size=0)).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("s3://bucket/k", size=1001)).SerializeToString(), MediaReason.TOO_LARGE),
        (item(ref("s3://bucket")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("s3:///key")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("file:///etc/passwd")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("file:///srv/media/../x")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("file://host/srv/media/a")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(ref("file:relative")).SerializeToString(), MediaReason.BAD_REFERENCE),
        (item(media("image/png", uri=" ")).SerializeToString(), RejectCode.MISSING_MEDIA),
    ],
)
def test_rejections(raw: bytes | None, code: str) -> None:
    assert code_of(raw) == code


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/dir/k.jpg", "S3://bucket/k", "file:///srv/media/ab/k", "file:///srv/media/a%20b"],
)
def test_reference_passed_on_unchanged(uri: str) -> None:
    part = ref(uri, size=1000)
    v = validate(item(part).SerializeToString(), SETTINGS, MEDIA)
    assert Modality.IMAGE in v.parts_by_modality
    (passed,) = v.parts_by_modality[Modality.IMAGE]
    assert passed.media == part.media


def test_inline_over_limit_says_send_by_reference() -> None:
    with pytest.raises(Rejection) as info:
        validate(item(media("image/png", b"x" * 101)).SerializeToString(), SETTINGS, MEDIA)
    assert info.value.code == RejectCode.OVERSIZED_MEDIA
    assert "by reference" in info.value.reason


def test_scheme_not_allowed_names_the_allowed_ones() -> None:
    s3_only = MEDIA.model_copy(update={"allowed_schemes": "s3"})
    with pytest.raises(Rejection) as info:
        validate(item(ref("file:///srv/media/a"), id="c3").SerializeToString(), SETTINGS, s3_only)
    assert info.value.code == MediaReason.SCHEME_NOT_ALLOWED
    assert info.value.content_id == "c3"
    assert "'file'" in info.value.reason and "s3" in info.value.reason


def test_media_limits_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSGUARD_MEDIA_ALLOWED_SCHEMES", "s3")
    with pytest.raises(Rejection) as info:
        validate(item(ref("file:///srv/media/a")).SerializeToString(), PipelineSettings())
    assert info.value.code == MediaReason.SCHEME_NOT_ALLOWED


def test_rejection_carries_content_id() -> None:
    with pytest.raises(Rejection) as info:
        validate(item(media("application/pdf"), id="c7").SerializeToString(), SETTINGS)
    assert info.value.content_id == "c7"
    assert "application/pdf" in info.value.reason
