"""The vision service's part parser: a ClassifyRequest's parts → ImageParts (bytes + declared
mime type). The servicer itself is the template's (crossguard.core.serving.servicer).
"""

from __future__ import annotations

from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.serving.servicer import part_id
from crossguard.v1 import classifier_pb2, content_pb2
from crossguard.vision.service import ImagePart
from crossguard.vision.settings import DecodeLimits


def media_bytes(media: content_pb2.Media, pid: str, limits: DecodeLimits) -> bytes:
    """The bytes of a media part. The one place that reads media: inline data today; media by
    reference (file://, s3://) comes through crossguard.core.media.read_media once it exists."""
    source = media.WhichOneof("source")
    if source == "inline_data":
        data = media.inline_data
        if len(data) > limits.max_image_bytes:
            raise LimitExceeded(
                f"image part {pid!r} has {len(data)} bytes; the limit is "
                f"{limits.max_image_bytes} (CROSSGUARD_VISION_MAX_IMAGE_BYTES)"
            )
        return bytes(data)
    if source == "uri":
        raise InvalidInput(
            f"image part {pid!r} is a reference ({media.uri[:80]!r}); this vision service reads "
            "inline images only"
        )
    raise InvalidInput(f"image part {pid!r} has neither inline data nor a uri")


def request_parts(request: classifier_pb2.ClassifyRequest, limits: DecodeLimits) -> list[ImagePart]:
    parts: list[ImagePart] = []
    for index, part in enumerate(request.parts):
        pid = part_id(part, index)
        kind = part.WhichOneof("kind")
        if kind == "media":
            data = media_bytes(part.media, pid, limits)
            parts.append(ImagePart(pid, data, part.media.mime_type))
        elif kind == "text":
            raise InvalidInput(
                f"part {pid!r} is text; the vision service takes image parts only: send text "
                "to the text service"
            )
        else:
            raise InvalidInput(f"part {pid!r} has neither text nor media")
    return parts


async def parse_parts(request: classifier_pb2.ClassifyRequest) -> list[ImagePart]:
    """The PartParser of the vision service (decoding happens later, in the decode pool)."""
    return request_parts(request, _limits())


_LIMITS: DecodeLimits | None = None


def _limits() -> DecodeLimits:
    global _LIMITS
    if _LIMITS is None:
        _LIMITS = DecodeLimits()
    return _LIMITS
