"""Media references without I/O: URI parsing, reference checks, inline reads, reason codes and
how they travel (status message prefix → the pipeline's DLQ rejection)."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from crossguard.core.grpc_server import error_status
from crossguard.core.media import (
    MediaAccessDenied,
    MediaBadReference,
    MediaError,
    MediaHashMismatch,
    MediaNotFound,
    MediaReason,
    MediaSchemeNotAllowed,
    MediaSettings,
    MediaSizeMismatch,
    MediaTimeout,
    MediaTooLarge,
    MediaUnavailable,
    check_reference,
    media_reason,
    parse_uri,
    read_media,
)
from crossguard.pipeline.media import media_rejection
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.unit

LIMITS = MediaSettings(max_bytes=100, file_root="/srv/media", allowed_schemes="s3,file")
DATA = b"hello media"
SHA = hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (MediaNotFound, grpc.StatusCode.NOT_FOUND),
        (MediaTooLarge, grpc.StatusCode.INVALID_ARGUMENT),
        (MediaSizeMismatch, grpc.StatusCode.INVALID_ARGUMENT),
        (MediaHashMismatch, grpc.StatusCode.INVALID_ARGUMENT),
        (MediaTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
        (MediaSchemeNotAllowed, grpc.StatusCode.INVALID_ARGUMENT),
        (MediaBadReference, grpc.StatusCode.INVALID_ARGUMENT),
        (MediaAccessDenied, grpc.StatusCode.PERMISSION_DENIED),
        (MediaUnavailable, grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_error_travels_as_status_and_reason_prefix(
    error: type[MediaError], status: grpc.StatusCode
) -> None:
    """What a classifier's interceptor answers, and what the pipeline makes of it."""
    code, message = error_status(error("part 'image-0': details"), "/x/Classify")
    assert code == status
    assert message == f"{error.reason}: part 'image-0': details"
    assert media_reason(message) == error.reason
    rejection = media_rejection("image", message, "c1")
    assert rejection is not None
    assert (rejection.code, rejection.content_id) == (error.reason, "c1")
    assert rejection.reason == f"image classifier: {message}"


@pytest.mark.parametrize(
    "message", ["", "media_unknown: x", "invalid part: media_not_found: x", "media_not_found:x"]
)
def test_other_messages_are_no_media_reason(message: str) -> None:
    assert media_reason(message) is None
    assert media_rejection("image", message, "c1") is None


def test_reason_codes_are_distinct() -> None:
    codes = [v for k, v in vars(MediaReason).items() if not k.startswith("_")]
    assert len(codes) == len(set(codes)) == 20  # 10 fetching and decoding, 6 images, 4 audio
    assert all(c.startswith("media_") for c in codes)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b c?.png", ("s3", "", "bucket", "a/b c?.png")),
        ("file:///srv/media/a%20b", ("file", "/srv/media/a b", "", "")),
        ("file://localhost/srv/media/x", ("file", "/srv/media/x", "", "")),
        ("file:///srv/media/../etc", ("file", "/srv/etc", "", "")),
    ],
)
def test_parse_uri(uri: str, expected: tuple[str, str, str, str]) -> None:
    ref = parse_uri(uri)
    assert (ref.scheme, ref.path, ref.bucket, ref.key) == expected


@pytest.mark.parametrize(
    "uri", ["s3://", "s3://bucket", "s3://bucket/", "file://h/x", "file:///a?b", "x" * 3000, "a\nb"]
)
def test_parse_uri_refuses(uri: str) -> None:
    with pytest.raises(MediaBadReference):
        parse_uri(uri)


def ref(uri: str = "s3://bucket/k", sha: str = SHA, size: int = len(DATA)) -> content_pb2.Media:
    return content_pb2.Media(mime_type="image/png", uri=uri, sha256=sha, size=size)


@pytest.mark.parametrize(
    ("media", "error"),
    [
        (ref("https://cdn/x"), MediaSchemeNotAllowed),
        (ref(sha=""), MediaBadReference),
        (ref(sha=SHA[:-1]), MediaBadReference),
        (ref(size=0), MediaBadReference),
        (ref(size=101), MediaTooLarge),
        (ref("file:///srv/mediax/a"), MediaBadReference),  # a sibling, not inside the root
        (ref("file:///srv/media/../../etc/passwd"), MediaBadReference),
        (content_pb2.Media(mime_type="image/png", inline_data=DATA), MediaBadReference),
    ],
)
def test_check_reference_refuses(media: content_pb2.Media, error: type[MediaError]) -> None:
    with pytest.raises(error):
        check_reference(media, LIMITS)


def test_check_reference_accepts_upper_case_sha_and_scheme() -> None:
    parsed = check_reference(ref("S3://bucket/k", sha=SHA.upper(), size=100), LIMITS)
    assert (parsed.bucket, parsed.key) == ("bucket", "k")


def test_no_reader_for_an_allowed_unknown_scheme() -> None:
    with pytest.raises(MediaBadReference, match="no reader"):
        read_media(ref("gs://bucket/k"), LIMITS.model_copy(update={"allowed_schemes": "gs"}))


def inline(data: bytes, sha: str = "", size: int = 0) -> content_pb2.Media:
    return content_pb2.Media(mime_type="image/png", inline_data=data, sha256=sha, size=size)


def test_inline_read() -> None:
    assert read_media(inline(DATA), LIMITS) == DATA
    assert read_media(inline(DATA, SHA.upper(), len(DATA)), LIMITS) == DATA


@pytest.mark.parametrize(
    ("media", "error"),
    [
        (inline(b"x" * 101), MediaTooLarge),
        (inline(DATA, size=3), MediaSizeMismatch),
        (inline(DATA, sha="0" * 64), MediaHashMismatch),
    ],
)
def test_inline_refused(media: content_pb2.Media, error: type[MediaError]) -> None:
    with pytest.raises(error):
        read_media(media, LIMITS)


def test_secrets_are_not_shown() -> None:
    settings = MediaSettings(s3_secret_access_key="hunter2", s3_access_key_id="AKIA")  # type: ignore[arg-type]
    assert "hunter2" not in repr(settings) and "AKIA" not in repr(settings)
