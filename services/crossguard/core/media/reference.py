"""Media references: parse a URI and check a Media part's reference against the limits, with
no I/O, so the pipeline can refuse a bad reference before any classifier fetches it."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crossguard.core.media.errors import (
    MediaBadReference,
    MediaSchemeNotAllowed,
    MediaTooLarge,
)
from crossguard.core.media.settings import MediaSettings
from crossguard.v1 import content_pb2

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_URI_CHARS = 2048


@dataclass(frozen=True)
class MediaRef:
    """A parsed reference: `path` for file://, `bucket` and `key` for s3://."""

    scheme: str
    uri: str
    path: str = ""
    bucket: str = ""
    key: str = ""


def parse_uri(uri: str) -> MediaRef:
    """file:///absolute/path (percent-decoded; host empty or localhost) or s3://bucket/key
    (the key taken as written, like the AWS CLI's s3:// URIs)."""
    if len(uri) > _MAX_URI_CHARS:
        raise MediaBadReference(f"uri longer than {_MAX_URI_CHARS} chars")
    if any(ord(c) < 32 for c in uri):
        raise MediaBadReference("uri has control characters")
    scheme, sep, rest = uri.partition("://")
    scheme = scheme.lower()
    if not sep or not scheme:
        raise MediaBadReference(f"not a URI: {uri[:100]!r}")
    if scheme == "s3":
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise MediaBadReference(f"s3 uri needs a bucket and a key: {uri[:200]!r}")
        return MediaRef("s3", uri, bucket=bucket, key=key)
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise MediaBadReference(f"file uri must be file:///absolute/path: {uri[:200]!r}")
        path = unquote(parts.path)
        if not path.startswith("/") or "\x00" in path:
            raise MediaBadReference(f"file uri must be file:///absolute/path: {uri[:200]!r}")
        return MediaRef("file", uri, path=os.path.normpath(path))
    return MediaRef(scheme, uri)


def check_reference(media: content_pb2.Media, limits: MediaSettings) -> MediaRef:
    """A uri Media part's reference, checked: scheme allowed, URI well formed, sha256 and size
    present, size within limits, a file:// path inside the media root (lexically; read_media
    checks again after resolving symlinks). Raises MediaError subclasses."""
    if media.WhichOneof("source") != "uri" or not media.uri.strip():
        raise MediaBadReference("no uri")
    scheme = media.uri.partition(":")[0].lower()
    if scheme not in limits.schemes:
        allowed = ", ".join(sorted(limits.schemes)) or "none"
        raise MediaSchemeNotAllowed(f"scheme {scheme[:20]!r} is not allowed (allowed: {allowed})")
    ref = parse_uri(media.uri)
    if not _SHA256.match(media.sha256.lower()):
        raise MediaBadReference("a uri needs the hex sha256 of the media bytes")
    if media.size <= 0:
        raise MediaBadReference("a uri needs the size of the media bytes")
    if media.size > limits.max_bytes:
        raise MediaTooLarge(f"declared size {media.size} bytes; limit {limits.max_bytes}")
    if ref.scheme == "file" and not is_inside(Path(ref.path), limits.root):
        raise MediaBadReference(f"file {ref.path!r} is outside the media root {limits.root}")
    return ref


def is_inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)
