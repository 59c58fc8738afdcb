"""The vision service's part parser: a ClassifyRequest's parts → ImageParts (bytes + declared
mime type). The servicer itself is the template's (crossguard.core.serving.servicer).

Media are read with crossguard.core.media.read_media (inline bytes, or file:// and s3://
references with size limits, a timeout and the sha256 check), off the event loop; the largest
object read is the smaller of CROSSGUARD_MEDIA_MAX_BYTES and CROSSGUARD_VISION_MAX_IMAGE_BYTES.
"""

from __future__ import annotations

import asyncio
import functools

from crossguard.core.errors import InvalidInput
from crossguard.core.media import MediaSettings, read_media
from crossguard.core.serving.servicer import part_id
from crossguard.v1 import classifier_pb2
from crossguard.vision.service import ImagePart
from crossguard.vision.settings import DecodeLimits


def image_media_settings(media: MediaSettings, limits: DecodeLimits) -> MediaSettings:
    """`media` with its byte limit lowered to the vision service's image limit."""
    return media.model_copy(update={"max_bytes": min(media.max_bytes, limits.max_image_bytes)})


def request_parts(request: classifier_pb2.ClassifyRequest, media: MediaSettings) -> list[ImagePart]:
    """Image parts of a request, their bytes read (blocking: media by reference is fetched)."""
    parts: list[ImagePart] = []
    for index, part in enumerate(request.parts):
        pid = part_id(part, index)
        kind = part.WhichOneof("kind")
        if kind == "media":
            parts.append(ImagePart(pid, read_media(part.media, media), part.media.mime_type))
        elif kind == "text":
            raise InvalidInput(
                f"part {pid!r} is text; the vision service takes image parts only: send text "
                "to the text service"
            )
        else:
            raise InvalidInput(f"part {pid!r} has neither text nor media")
    return parts


@functools.cache
def _media_settings() -> MediaSettings:
    return image_media_settings(MediaSettings(), DecodeLimits())


async def parse_parts(request: classifier_pb2.ClassifyRequest) -> list[ImagePart]:
    """The PartParser of the vision service: reads the media off the event loop (decoding
    happens later, in the decode pool)."""
    return await asyncio.to_thread(request_parts, request, _media_settings())
