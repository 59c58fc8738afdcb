"""The audio service's part parser: a ClassifyRequest's media parts → AudioInput (part id and
encoded bytes, inline or read by reference with crossguard.core.media.read_media). The servicer
itself is the template's (crossguard.core.serving.servicer.ClassifierServicer); decoding
happens in the model, off the event loop.
"""

from __future__ import annotations

import asyncio
import functools

from crossguard.audio.model import AudioInput
from crossguard.core.errors import InvalidInput
from crossguard.core.media import MediaError, MediaSettings, read_media
from crossguard.core.serving.servicer import part_id
from crossguard.v1 import classifier_pb2, content_pb2

# What libsndfile decodes here (WAV, FLAC, OGG Vorbis/Opus, MP3). An empty type is accepted:
# the decoder sniffs the bytes.
AUDIO_MIME_TYPES = frozenset(
    {
        "audio/wav",
        "audio/x-wav",
        "audio/wave",
        "audio/vnd.wave",
        "audio/flac",
        "audio/x-flac",
        "audio/ogg",
        "audio/opus",
        "application/ogg",
        "audio/mpeg",
        "audio/mp3",
    }
)


@functools.cache
def media_settings() -> MediaSettings:
    """CROSSGUARD_MEDIA_* (limits and stores for media by reference), read once per process."""
    return MediaSettings()


def check_parts(request: classifier_pb2.ClassifyRequest) -> list[tuple[str, content_pb2.Media]]:
    """(part id, media) of every part of a request; any text part or non-audio media part is
    an InvalidInput."""
    parts: list[tuple[str, content_pb2.Media]] = []
    for index, part in enumerate(request.parts):
        kind = part.WhichOneof("kind")
        pid = part_id(part, index)
        if kind == "text":
            raise InvalidInput(
                f"part {pid!r} is text; the audio service takes audio parts only: send text to "
                "the text service"
            )
        if kind != "media":
            raise InvalidInput(f"part {pid!r} has neither text nor media")
        mime = part.media.mime_type.split(";", 1)[0].strip().lower()
        if mime and mime not in AUDIO_MIME_TYPES:
            raise InvalidInput(
                f"part {pid!r} has media type {part.media.mime_type!r}; the audio service "
                f"decodes {', '.join(sorted(AUDIO_MIME_TYPES))}"
            )
        parts.append((pid, part.media))
    return parts


def read_part(pid: str, media: content_pb2.Media, limits: MediaSettings) -> AudioInput:
    """The part's bytes, inline or by reference (crossguard.core.media.read_media: size,
    sha256 and timeout checks); a media error names the part."""
    try:
        return AudioInput(pid, read_media(media, limits))
    except MediaError as exc:
        raise type(exc)(f"part {pid!r}: {exc.detail}") from exc


async def parse_parts(request: classifier_pb2.ClassifyRequest) -> list[AudioInput]:
    """The PartParser of the audio service: parts checked, then read (by reference: off the
    event loop); decoding runs later, in the model's worker thread."""
    parts = check_parts(request)
    limits = media_settings()
    out: list[AudioInput] = []
    for pid, media in parts:
        if media.WhichOneof("source") == "inline_data":
            out.append(read_part(pid, media, limits))
        else:
            out.append(await asyncio.to_thread(read_part, pid, media, limits))
    return out
