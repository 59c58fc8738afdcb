"""Showing referenced media: the store holds only a part's URI, type, size and sha256; the bytes
are read from the reference (crossguard.core.media: file:// under CROSSGUARD_MEDIA_FILE_ROOT,
s3://, with its size limit, timeout and sha256 check) when a reviewer opens the task, and are
never stored."""

from __future__ import annotations

from crossguard.core.errors import InvalidInput
from crossguard.core.media import MediaSettings, read_media
from crossguard.v1 import content_pb2

SHOWN_TYPES = ("image/", "audio/")


class MediaNotShown(InvalidInput):
    """The part is not media the UI shows (type), or its bytes were not kept (inline)."""


def read_shown_media(media: content_pb2.Media, settings: MediaSettings) -> bytes:
    if not media.mime_type.startswith(SHOWN_TYPES):
        raise MediaNotShown(f"media type {media.mime_type[:40]!r} is not shown")
    if media.WhichOneof("source") != "uri":
        raise MediaNotShown("inline media are not kept by the review store")
    return read_media(media, settings)
