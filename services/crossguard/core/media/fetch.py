"""read_media: a Media part's bytes, from inline data, file:// or s3://, with the size checked
before and while reading, the sha256 verified and the fetch timeout enforced.

Blocking: classifiers call it off the event loop (asyncio.to_thread or an executor).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from crossguard.core.media.errors import (
    MediaAccessDenied,
    MediaBadReference,
    MediaHashMismatch,
    MediaNotFound,
    MediaSizeMismatch,
    MediaTimeout,
    MediaTooLarge,
)
from crossguard.core.media.reference import MediaRef, check_reference, is_inside
from crossguard.core.media.s3 import s3_client, s3_errors
from crossguard.core.media.settings import MediaSettings
from crossguard.v1 import content_pb2

CHUNK_BYTES = 64 * 1024


def read_media(media: content_pb2.Media, limits: MediaSettings) -> bytes:
    """The media bytes. Raises a MediaError subclass (each with a reason code; the gRPC
    interceptor maps it to a status whose message starts with the code) for a bad reference,
    a scheme not allowed, a missing object, a size over limits or unlike the declared one, a
    sha256 mismatch, a timeout, or a store that refuses or fails."""
    source = media.WhichOneof("source")
    if source == "inline_data":
        return _check_inline(media, limits)
    ref = check_reference(media, limits)
    deadline = time.monotonic() + limits.fetch_timeout_s
    reader = _READERS.get(ref.scheme)
    if reader is None:  # allowed by the settings, but no reader exists for it
        raise MediaBadReference(f"no reader for scheme {ref.scheme!r}")
    return reader(ref, media, limits, deadline)


def _check_inline(media: content_pb2.Media, limits: MediaSettings) -> bytes:
    data = media.inline_data
    if len(data) > limits.max_bytes:
        raise MediaTooLarge(f"{len(data)} inline bytes; limit {limits.max_bytes}")
    if media.size and media.size != len(data):
        raise MediaSizeMismatch(f"{len(data)} inline bytes; declared size {media.size}")
    if media.sha256 and hashlib.sha256(data).hexdigest() != media.sha256.lower():
        raise MediaHashMismatch("inline bytes do not match the declared sha256")
    return data


def _check_stored_size(actual: int, media: content_pb2.Media, limits: MediaSettings) -> None:
    """Before reading: the stored object's size against the limit and the declared size."""
    if actual > limits.max_bytes:
        raise MediaTooLarge(f"stored object is {actual} bytes; limit {limits.max_bytes}")
    if actual != media.size:
        raise MediaSizeMismatch(f"stored object is {actual} bytes; declared size {media.size}")


def _drain(
    chunks: Iterator[bytes], media: content_pb2.Media, limits: MediaSettings, deadline: float
) -> bytes:
    """While reading: never more than the declared size (plus one byte, to see an overrun),
    the deadline checked after every chunk, then the sha256."""
    digest = hashlib.sha256()
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        digest.update(chunk)
        if len(buf) > media.size:
            if len(buf) > limits.max_bytes:
                raise MediaTooLarge(f"more than {limits.max_bytes} bytes read; limit")
            raise MediaSizeMismatch(f"more bytes than the declared size {media.size}")
        if time.monotonic() > deadline:
            raise MediaTimeout(f"not read within {limits.fetch_timeout_s:g} s")
    if len(buf) != media.size:
        raise MediaSizeMismatch(f"{len(buf)} bytes read; declared size {media.size}")
    if digest.hexdigest() != media.sha256.lower():
        raise MediaHashMismatch("the bytes read do not match the declared sha256")
    return bytes(buf)


def _read_file(
    ref: MediaRef, media: content_pb2.Media, limits: MediaSettings, deadline: float
) -> bytes:
    root = limits.root.resolve()
    try:
        real = Path(ref.path).resolve(strict=True)
    except FileNotFoundError:
        raise MediaNotFound(f"no file {ref.path!r}") from None
    except OSError as exc:  # a symlink loop, a path component that is not a directory
        raise MediaBadReference(f"file {ref.path!r}: {exc.strerror}") from None
    if not is_inside(real, root):
        raise MediaBadReference(f"file {ref.path!r} resolves outside the media root {root}")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        raise MediaNotFound(f"no file {ref.path!r}") from None
    except PermissionError:
        raise MediaAccessDenied(f"file {ref.path!r} is not readable") from None
    except OSError as exc:  # replaced by a symlink since it was resolved, ...
        raise MediaBadReference(f"file {ref.path!r}: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise MediaBadReference(f"{ref.path!r} is not a regular file")
    with os.fdopen(fd, "rb") as fh:
        _check_stored_size(info.st_size, media, limits)
        return _drain(iter(lambda: fh.read(CHUNK_BYTES), b""), media, limits, deadline)


def _read_s3(
    ref: MediaRef, media: content_pb2.Media, limits: MediaSettings, deadline: float
) -> bytes:
    client = s3_client(limits)
    where = f"s3://{ref.bucket}/{ref.key}"
    with s3_errors(where):
        response = client.get_object(ref.bucket, ref.key)
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit():
                _check_stored_size(int(length), media, limits)
            # read1: at most one socket read per chunk, so the deadline is checked between
            # reads even when the store trickles bytes.
            chunks = iter(lambda: response.read1(CHUNK_BYTES), b"")
            return _drain(chunks, media, limits, deadline)
        finally:
            response.close()
            response.release_conn()


Reader = Callable[[MediaRef, content_pb2.Media, MediaSettings, float], bytes]
_READERS: dict[str, Reader] = {"file": _read_file, "s3": _read_s3}
