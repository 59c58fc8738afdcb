"""Showing referenced media: the store holds only a part's URI, type and sha256; the bytes are
read from the reference when a reviewer opens the task, never stored.

file:// references must resolve under CROSSGUARD_REVIEW_MEDIA_ROOT (a task cannot make the
service read arbitrary files); the size limit and the sha256 are checked on every read.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import unquote, urlparse

from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.v1 import content_pb2

SHOWN_TYPES = ("image/", "audio/")


class MediaUnavailable(InvalidInput):
    """The reference cannot be shown here (scheme, location, type, or content mismatch)."""


def read_media(media: content_pb2.Media, root: Path | None, max_bytes: int) -> bytes:
    if not media.mime_type.startswith(SHOWN_TYPES):
        raise MediaUnavailable(f"media type {media.mime_type!r} is not shown")
    if media.WhichOneof("source") != "uri":
        raise MediaUnavailable("inline media are not kept by the review store")
    uri = urlparse(media.uri)
    if uri.scheme != "file":
        raise MediaUnavailable(f"{uri.scheme}:// media are not readable by this service")
    if root is None:
        raise MediaUnavailable("no media root configured (CROSSGUARD_REVIEW_MEDIA_ROOT)")
    path = Path(unquote(uri.path)).resolve()
    if not path.is_relative_to(root.resolve()):
        raise MediaUnavailable("media reference outside the media root")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LimitExceeded(f"media is {size} bytes; the limit is {max_bytes}")
        data = path.read_bytes()
    except OSError:
        raise MediaUnavailable("media reference cannot be read") from None
    if media.sha256 and hashlib.sha256(data).hexdigest() != media.sha256.lower():
        raise MediaUnavailable("media bytes do not match their sha256")
    return data
