"""The embedded file:// store and read_media on real files: round trip, the media root (also
against symlinks), missing files, sizes and hashes."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from crossguard.core.media import (
    FileMediaStore,
    MediaBadReference,
    MediaHashMismatch,
    MediaNotFound,
    MediaSettings,
    MediaSizeMismatch,
    MediaTooLarge,
    open_store,
    read_media,
)
from crossguard.core.media.store import put_file
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.integration

DATA = b"\x89PNG not really an image"


@pytest.fixture
def limits(tmp_path: Path) -> MediaSettings:
    return MediaSettings(file_root=tmp_path / "root", max_bytes=1000)


def test_put_then_read(limits: MediaSettings) -> None:
    store = open_store(limits)
    assert isinstance(store, FileMediaStore)
    media = store.put(DATA, "image/png")
    assert media.uri.startswith(limits.root.as_uri())
    assert (media.size, media.mime_type) == (len(DATA), "image/png")
    assert read_media(media, limits) == DATA
    # Content-addressed: the same bytes, the same reference, one file.
    assert store.put(DATA, "image/png") == media
    assert len([p for p in limits.file_root.rglob("*") if p.is_file()]) == 1


def test_store_uri_names_a_directory(tmp_path: Path, limits: MediaSettings) -> None:
    target = limits.file_root / "sub dir"
    settings = limits.model_copy(update={"store_uri": target.as_uri()})
    media = open_store(settings).put(DATA, "audio/wav")
    assert Path(media.uri.removeprefix("file://").replace("%20", " ")).is_relative_to(target)
    assert read_media(media, settings) == DATA


def test_missing_file(limits: MediaSettings) -> None:
    media = FileMediaStore(limits.file_root).put(DATA, "image/png")
    Path(media.uri.removeprefix("file://")).unlink()
    with pytest.raises(MediaNotFound):
        read_media(media, limits)


def test_symlink_out_of_the_root_is_refused(tmp_path: Path, limits: MediaSettings) -> None:
    outside = tmp_path / "secret"
    outside.write_bytes(DATA)
    limits.file_root.mkdir(parents=True)
    link = limits.file_root / "link"
    os.symlink(outside, link)
    media = content_pb2.Media(
        mime_type="image/png", uri=link.as_uri(), sha256=_sha(DATA), size=len(DATA)
    )
    with pytest.raises(MediaBadReference, match="outside the media root"):
        read_media(media, limits)


def test_directory_is_refused(limits: MediaSettings) -> None:
    (limits.file_root / "d").mkdir(parents=True)
    media = content_pb2.Media(
        mime_type="image/png", uri=(limits.file_root / "d").as_uri(), sha256="a" * 64, size=1
    )
    with pytest.raises(MediaBadReference, match="not a regular file"):
        read_media(media, limits)


def test_file_changed_after_put(limits: MediaSettings) -> None:
    media = FileMediaStore(limits.file_root).put(DATA, "image/png")
    path = Path(media.uri.removeprefix("file://"))
    path.write_bytes(DATA.upper())  # same length, other bytes
    with pytest.raises(MediaHashMismatch):
        read_media(media, limits)
    path.write_bytes(DATA + b"more")
    with pytest.raises(MediaSizeMismatch):
        read_media(media, limits)
    path.write_bytes(b"x" * 1001)
    with pytest.raises(MediaTooLarge):
        read_media(media, limits)


def test_put_file_refuses_over_the_limit(tmp_path: Path, limits: MediaSettings) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(b"x" * 1001)
    with pytest.raises(MediaTooLarge):
        put_file(FileMediaStore(limits.file_root), big, "image/png", limits)


def _sha(data: bytes) -> str:

    return hashlib.sha256(data).hexdigest()
