"""Media by reference (claim-check): read a Media part's bytes (inline, file:// or s3://) with
size limits, a timeout and a sha256 check, and put media into a store to get a reference.
docs/media.md describes the contract."""

from crossguard.core.media.errors import (
    MediaAccessDenied,
    MediaBadReference,
    MediaError,
    MediaHashMismatch,
    MediaNotFound,
    MediaReason,
    MediaSchemeNotAllowed,
    MediaSizeMismatch,
    MediaTimeout,
    MediaTooLarge,
    MediaUnavailable,
    MediaUndecodable,
    media_reason,
)
from crossguard.core.media.fetch import read_media
from crossguard.core.media.reference import MediaRef, check_reference, parse_uri
from crossguard.core.media.settings import MediaSettings
from crossguard.core.media.store import FileMediaStore, MediaStore, S3MediaStore, open_store

__all__ = [
    "FileMediaStore",
    "MediaAccessDenied",
    "MediaBadReference",
    "MediaError",
    "MediaHashMismatch",
    "MediaNotFound",
    "MediaReason",
    "MediaRef",
    "MediaSchemeNotAllowed",
    "MediaSettings",
    "MediaSizeMismatch",
    "MediaStore",
    "MediaTimeout",
    "MediaTooLarge",
    "MediaUnavailable",
    "MediaUndecodable",
    "S3MediaStore",
    "check_reference",
    "media_reason",
    "open_store",
    "parse_uri",
    "read_media",
]
