"""read_media and the S3 store against a real S3-compatible server (moto's server mode, started
by the s3_server fixture; no mocked client): round trip, and each failure raises its error:
hash mismatch, object too large, missing object, timeout (a server that accepts and never
answers), refused connection."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from crossguard.core.media import (
    MediaAccessDenied,
    MediaError,
    MediaHashMismatch,
    MediaNotFound,
    MediaSettings,
    MediaSizeMismatch,
    MediaTimeout,
    MediaTooLarge,
    MediaUnavailable,
    S3MediaStore,
    open_store,
    read_media,
)
from crossguard.core.media.s3 import s3_client
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.integration

DATA = b"RIFF not really a wave file" * 4


def s3_settings(endpoint: str, **kw: object) -> MediaSettings:
    fields: dict[str, object] = {
        "s3_endpoint": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": SecretStr("testing"),
        "s3_secret_access_key": SecretStr("testing"),
        "fetch_timeout_s": 1.0,
        "max_bytes": 1000,
        "allowed_schemes": "s3",
        **kw,
    }
    return MediaSettings(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def limits(s3_server: str) -> MediaSettings:
    """Settings for the test server with a fresh bucket, `media`-prefixed store."""
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    settings = s3_settings(s3_server, store_uri=f"s3://{bucket}/media")
    s3_client(settings).make_bucket(bucket)
    return settings


@pytest.fixture(scope="module")
def stored(limits: MediaSettings) -> content_pb2.Media:
    return open_store(limits).put(DATA, "audio/wav")


def variant(media: content_pb2.Media, **fields: object) -> content_pb2.Media:
    out = content_pb2.Media()
    out.CopyFrom(media)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


def test_put_then_read(limits: MediaSettings, stored: content_pb2.Media) -> None:
    assert stored.uri.startswith("s3://media-") and "/media/" in stored.uri
    assert stored.size == len(DATA)
    assert read_media(stored, limits) == DATA


def test_hash_mismatch(limits: MediaSettings, stored: content_pb2.Media) -> None:
    with pytest.raises(MediaHashMismatch):
        read_media(variant(stored, sha256="0" * 64), limits)


def test_missing_object(limits: MediaSettings, stored: content_pb2.Media) -> None:
    with pytest.raises(MediaNotFound):
        read_media(variant(stored, uri=stored.uri + "-gone"), limits)
    bucket = stored.uri.split("/")[2]
    with pytest.raises(MediaNotFound):
        read_media(variant(stored, uri=stored.uri.replace(bucket, bucket + "-gone")), limits)


def test_object_too_large(limits: MediaSettings) -> None:
    """The stored object is over the limit although its reference declares a small size."""
    big = open_store(limits).put(b"x" * 1001, "audio/wav")
    with pytest.raises(MediaTooLarge):
        read_media(variant(big, size=10), limits)
    # ... and a declared size over the limit is refused before any request.
    with pytest.raises(MediaTooLarge):
        read_media(big, limits)


def test_object_unlike_its_declared_size(limits: MediaSettings, stored: content_pb2.Media) -> None:
    with pytest.raises(MediaSizeMismatch):
        read_media(variant(stored, size=len(DATA) - 1), limits)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_timeout(silent_server: str, stored: content_pb2.Media) -> None:
    limits = s3_settings(silent_server, fetch_timeout_s=0.5)
    with pytest.raises(MediaTimeout):
        read_media(stored, limits)


def test_refused_connection_is_unavailable(stored: content_pb2.Media) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(MediaUnavailable):
        read_media(stored, s3_settings(f"http://127.0.0.1:{port}"))


def test_store_errors_are_media_errors(limits: MediaSettings) -> None:
    store = S3MediaStore(limits, f"no-such-bucket-{uuid.uuid4().hex[:8]}")
    with pytest.raises(MediaError) as info:
        store.put(DATA, "audio/wav")
    assert isinstance(info.value, MediaNotFound | MediaAccessDenied)
