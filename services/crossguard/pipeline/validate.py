"""Input validation: raw Kafka value → a checked ContentItem, or a Rejection for the DLQ.

Pure functions; never raise anything but Rejection for bad input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError

from crossguard.core.media import MediaError, MediaReason, MediaSettings, check_reference
from crossguard.core.results import Modality
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import content_pb2


class RejectCode:
    """Machine-readable DLQ error codes (header crossguard-dlq-error). A refused media
    reference, or a media error a classifier answered, has a media reason code instead
    (core.media.MediaReason: media_scheme_not_allowed, media_too_large, ...)."""

    MALFORMED = "malformed_protobuf"
    OVERSIZED_ITEM = "oversized_item"
    EMPTY_ID = "empty_id"
    BAD_ID = "bad_id"
    NO_PARTS = "no_parts"
    TOO_MANY_PARTS = "too_many_parts"
    EMPTY_PART = "empty_part"
    DUPLICATE_PART_ID = "duplicate_part_id"
    OVERSIZED_TEXT = "oversized_text"
    OVERSIZED_MEDIA = "oversized_media"
    MISSING_MEDIA = "missing_media_source"
    UNSUPPORTED_MIME = "unsupported_mime_type"
    SHA256_MISMATCH = "sha256_mismatch"
    INTERNAL = "internal_error"
    UNPRODUCIBLE = "unproducible_outcome"


class Rejection(Exception):
    def __init__(self, code: str, reason: str, content_id: str = "") -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
        self.content_id = content_id


@dataclass(frozen=True)
class ValidItem:
    item: content_pb2.ContentItem
    # Hex sha256 over the item's deterministic serialization (media sha256 filled in).
    content_sha256: str
    parts_by_modality: dict[Modality, list[content_pb2.ContentPart]] = field(default_factory=dict)

    @property
    def content_id(self) -> str:
        return self.item.id


def modality_of(part: content_pb2.ContentPart, settings: PipelineSettings) -> Modality | None:
    kind = part.WhichOneof("kind")
    if kind == "text":
        return Modality.TEXT
    if kind == "media":
        mime = part.media.mime_type.split(";", 1)[0].strip().lower()
        if mime in settings.image_types:
            return Modality.IMAGE
        if mime in settings.audio_types:
            return Modality.AUDIO
    return None


def validate(
    raw: bytes | None, settings: PipelineSettings, media: MediaSettings | None = None
) -> ValidItem:
    """Parse and check one record value against the limits in `settings` and, for media
    references, `media` (default: settings.media, the CROSSGUARD_MEDIA_* variables)."""
    media_limits = settings.media if media is None else media
    if raw is None or len(raw) == 0:
        raise Rejection(RejectCode.MALFORMED, "empty record value")
    if len(raw) > settings.max_item_bytes:
        raise Rejection(
            RejectCode.OVERSIZED_ITEM,
            f"item is {len(raw)} bytes; limit {settings.max_item_bytes}",
        )
    item = content_pb2.ContentItem()
    try:
        item.ParseFromString(raw)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise Rejection(RejectCode.MALFORMED, f"not a ContentItem: {exc}") from None
    cid = item.id
    if not cid.strip():
        raise Rejection(RejectCode.EMPTY_ID, "content id is empty")
    if len(cid) > settings.max_id_chars or any(ord(c) < 32 for c in cid):
        raise Rejection(
            RejectCode.BAD_ID,
            f"content id longer than {settings.max_id_chars} chars or has control chars",
            cid,
        )
    if not item.parts:
        raise Rejection(RejectCode.NO_PARTS, "item has no parts", cid)
    if len(item.parts) > settings.max_parts:
        raise Rejection(
            RejectCode.TOO_MANY_PARTS,
            f"item has {len(item.parts)} parts; limit {settings.max_parts}",
            cid,
        )

    by_modality: dict[Modality, list[content_pb2.ContentPart]] = {}
    seen_ids: set[str] = set()
    for index, part in enumerate(item.parts):
        if not part.part_id:
            part.part_id = str(index)
        where = f"part {part.part_id!r}"
        if part.part_id in seen_ids:
            raise Rejection(RejectCode.DUPLICATE_PART_ID, f"{where} appears twice", cid)
        seen_ids.add(part.part_id)
        kind = part.WhichOneof("kind")
        if kind is None:
            raise Rejection(RejectCode.EMPTY_PART, f"{where} has neither text nor media", cid)
        if kind == "text" and len(part.text) > settings.max_text_chars:
            raise Rejection(
                RejectCode.OVERSIZED_TEXT,
                f"{where} has {len(part.text)} chars; limit {settings.max_text_chars}",
                cid,
            )
        modality = modality_of(part, settings)
        if modality is None:
            raise Rejection(
                RejectCode.UNSUPPORTED_MIME,
                f"{where} has unsupported mime type {part.media.mime_type!r}",
                cid,
            )
        if kind == "media":
            _check_media(part, where, cid, settings, media_limits)
        by_modality.setdefault(modality, []).append(part)

    sha = hashlib.sha256(item.SerializeToString(deterministic=True)).hexdigest()
    return ValidItem(item=item, content_sha256=sha, parts_by_modality=by_modality)


def _check_media(
    part: content_pb2.ContentPart,
    where: str,
    cid: str,
    settings: PipelineSettings,
    limits: MediaSettings,
) -> None:
    media = part.media
    source = media.WhichOneof("source")
    if source is None:
        raise Rejection(RejectCode.MISSING_MEDIA, f"{where} has neither inline data nor uri", cid)
    if source == "inline_data":
        size = len(media.inline_data)
        if size > settings.max_inline_bytes:
            raise Rejection(
                RejectCode.OVERSIZED_MEDIA,
                f"{where} has {size} inline bytes; limit {settings.max_inline_bytes}: send "
                "larger media by reference (a uri with sha256 and size; docs/media.md)",
                cid,
            )
        if size == 0:
            raise Rejection(RejectCode.EMPTY_PART, f"{where} has empty inline data", cid)
        if media.size and media.size != size:
            raise Rejection(
                MediaReason.SIZE_MISMATCH,
                f"{where} has {size} inline bytes; declared size {media.size}",
                cid,
            )
        digest = hashlib.sha256(media.inline_data).hexdigest()
        if media.sha256 and media.sha256.lower() != digest:
            raise Rejection(
                RejectCode.SHA256_MISMATCH, f"{where} sha256 does not match its bytes", cid
            )
        media.sha256 = digest
    elif not media.uri.strip():
        raise Rejection(RejectCode.MISSING_MEDIA, f"{where} has an empty uri", cid)
    else:
        # The reference travels on to the classifiers, which fetch and verify the bytes.
        try:
            check_reference(media, limits)
        except MediaError as exc:
            raise Rejection(exc.reason, f"{where}: {exc.detail}", cid) from None
