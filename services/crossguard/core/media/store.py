"""Media stores: put bytes, get a reference (a Media part with uri, sha256 and size).

Keys are content addresses (the sha256), so putting the same bytes twice is one object, and a
reference never points at bytes that change. Stores keep what is put: expire objects with the
bucket's lifecycle rules (docs/media.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Protocol

from crossguard.core.media.errors import MediaBadReference, MediaTooLarge
from crossguard.core.media.reference import parse_uri
from crossguard.core.media.s3 import s3_client, s3_errors
from crossguard.core.media.settings import MediaSettings
from crossguard.v1 import content_pb2


class MediaStore(Protocol):
    def put(self, data: bytes, mime_type: str) -> content_pb2.Media:
        """Store `data`; the Media part that refers to it."""
        ...


def reference(uri: str, data: bytes, mime_type: str) -> content_pb2.Media:
    return content_pb2.Media(
        mime_type=mime_type, uri=uri, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )


class FileMediaStore:
    """A directory (the embedded default): <root>/<sha256[:2]>/<sha256>, file:// references."""

    def __init__(self, root: Path) -> None:
        # Absolute but not resolved: references stay under the root as configured, which is
        # what the pipeline's lexical check compares with (read_media resolves both).
        self.root = Path(os.path.abspath(root))

    def put(self, data: bytes, mime_type: str) -> content_pb2.Media:
        sha = hashlib.sha256(data).hexdigest()
        path = self.root / sha[:2] / sha
        if not path.is_file() or path.stat().st_size != len(data):
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole, then renamed: a reader never sees a partial file.
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return reference(path.as_uri(), data, mime_type)


class S3MediaStore:
    """An S3 bucket (production): s3://<bucket>/<prefix><sha256>."""

    def __init__(self, settings: MediaSettings, bucket: str, prefix: str = "") -> None:
        self.client = s3_client(settings)
        self.bucket = bucket
        self.prefix = prefix

    def put(self, data: bytes, mime_type: str) -> content_pb2.Media:
        key = f"{self.prefix}{hashlib.sha256(data).hexdigest()}"
        uri = f"s3://{self.bucket}/{key}"
        with s3_errors(uri):
            self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=mime_type
            )
        return reference(uri, data, mime_type)


def open_store(settings: MediaSettings) -> MediaStore:
    """The store CROSSGUARD_MEDIA_STORE_URI names: empty = a file store in the media root."""
    uri = settings.store_uri.strip()
    if not uri:
        return FileMediaStore(settings.file_root)
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        if not bucket:
            raise MediaBadReference(f"store uri needs a bucket: {uri!r}")
        return S3MediaStore(settings, bucket, prefix.strip("/") + "/" if prefix.strip("/") else "")
    if uri.startswith("file://"):
        return FileMediaStore(Path(parse_uri(uri).path))
    raise MediaBadReference(f"store uri must be s3://bucket/prefix or file:///dir: {uri!r}")


def put_file(
    store: MediaStore, path: Path, mime_type: str, limits: MediaSettings
) -> content_pb2.Media:
    """A local file into the store, refused before reading when over the media limit."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise MediaTooLarge(f"{path} is {size} bytes; limit {limits.max_bytes}")
    return store.put(path.read_bytes(), mime_type)
