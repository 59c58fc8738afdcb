"""The audio service's part parser: a ClassifyRequest's media parts → AudioInput (part id and
encoded bytes). The servicer itself is the template's
(crossguard.core.serving.servicer.ClassifierServicer); decoding happens in the model, off the
event loop.
"""

from __future__ import annotations

from crossguard.audio.model import AudioInput
from crossguard.core.errors import InvalidInput
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


def media_bytes(pid: str, media: content_pb2.Media) -> bytes:
    """The encoded bytes of a media part (its size limit, CROSSGUARD_AUDIO_MAX_BYTES, is
    checked with the other limits when it is decoded).

    Inline bytes only for now: media by reference (file://, s3://) is to be read by
    crossguard.core.media.read_media once it lands; until then a URI is refused clearly."""
    source = media.WhichOneof("source")
    if source == "inline_data":
        return media.inline_data
    if source == "uri":
        raise InvalidInput(
            f"part {pid!r} references its audio by URI ({media.uri[:80]}); this audio service "
            "reads inline audio only"
        )
    raise InvalidInput(f"part {pid!r} has no audio bytes (neither inline_data nor uri)")


def request_parts(request: classifier_pb2.ClassifyRequest) -> list[AudioInput]:
    """(part id, bytes) of every part of a request; any text part or non-audio media part is
    an InvalidInput."""
    parts: list[AudioInput] = []
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
        parts.append(AudioInput(pid, media_bytes(pid, part.media)))
    return parts


async def parse_parts(request: classifier_pb2.ClassifyRequest) -> list[AudioInput]:
    """The PartParser of the audio service (bytes are only sliced here; decoding runs in the
    model's worker thread)."""
    return request_parts(request)
