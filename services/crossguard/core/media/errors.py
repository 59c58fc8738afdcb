"""Media errors: domain errors (core.errors) with a machine-readable reason code each.

The code travels to the caller as the start of the message, `<reason>: <detail>`: the gRPC
interceptor (core.grpc_server) answers a domain error with its status and str(exc), so a
classifier that lets a MediaError propagate answers e.g. INVALID_ARGUMENT with
"media_hash_mismatch: part 'image-0': ...", and the pipeline reads the code back with
media_reason() and sends the item to the dead-letter topic with it. The same text form works
for unary calls, stream items and batch items (their errors carry a code and a message).
"""

from __future__ import annotations

import re
from typing import ClassVar

from crossguard.core.errors import (
    CrossguardError,
    DeadlineExceeded,
    InvalidInput,
    LimitExceeded,
    NotFound,
    NotReady,
    PermissionDenied,
)


class MediaReason:
    """Reason codes (DLQ header crossguard-dlq-error when a media part is refused)."""

    NOT_FOUND = "media_not_found"
    TOO_LARGE = "media_too_large"
    SIZE_MISMATCH = "media_size_mismatch"
    HASH_MISMATCH = "media_hash_mismatch"
    TIMEOUT = "media_timeout"
    SCHEME_NOT_ALLOWED = "media_scheme_not_allowed"
    BAD_REFERENCE = "media_bad_reference"
    ACCESS_DENIED = "media_access_denied"
    UNAVAILABLE = "media_unavailable"
    UNDECODABLE = "media_undecodable"
    # Image bytes the vision service's safe decoder refuses (crossguard.vision.decode).
    IMAGE_UNSUPPORTED = "media_image_unsupported"
    IMAGE_CORRUPT = "media_image_corrupt"
    IMAGE_POLYGLOT = "media_image_polyglot"
    IMAGE_TOO_LARGE = "media_image_too_large"
    IMAGE_DECOMPRESSION_BOMB = "media_image_decompression_bomb"
    IMAGE_DECODE_TIMEOUT = "media_image_decode_timeout"
    # Audio over the audio service's limits (crossguard.audio.decode).
    AUDIO_TOO_LARGE = "media_audio_too_large"
    AUDIO_TOO_LONG = "media_audio_too_long"
    AUDIO_SAMPLE_RATE = "media_audio_sample_rate"
    AUDIO_TOO_MANY_CHANNELS = "media_audio_too_many_channels"


class MediaError(CrossguardError):
    """Base of the media errors; `reason` is the machine-readable code, `detail` the text."""

    reason: ClassVar[str] = ""

    def __init__(self, detail: str) -> None:
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail


class MediaNotFound(MediaError, NotFound):
    """The referenced object or file does not exist (NOT_FOUND)."""

    reason = MediaReason.NOT_FOUND


class MediaTooLarge(MediaError, LimitExceeded):
    """Declared or actual size over CROSSGUARD_MEDIA_MAX_BYTES (INVALID_ARGUMENT)."""

    reason = MediaReason.TOO_LARGE


class MediaSizeMismatch(MediaError, InvalidInput):
    """The bytes read differ in length from the declared size (INVALID_ARGUMENT)."""

    reason = MediaReason.SIZE_MISMATCH


class MediaHashMismatch(MediaError, InvalidInput):
    """The bytes read do not hash to the declared sha256 (INVALID_ARGUMENT)."""

    reason = MediaReason.HASH_MISMATCH


class MediaTimeout(MediaError, DeadlineExceeded):
    """The store did not deliver within CROSSGUARD_MEDIA_FETCH_TIMEOUT_S (DEADLINE_EXCEEDED)."""

    reason = MediaReason.TIMEOUT


class MediaSchemeNotAllowed(MediaError, InvalidInput):
    """The URI's scheme is not in CROSSGUARD_MEDIA_ALLOWED_SCHEMES (INVALID_ARGUMENT)."""

    reason = MediaReason.SCHEME_NOT_ALLOWED


class MediaBadReference(MediaError, InvalidInput):
    """A malformed reference: no uri, bad URI, sha256 or size missing, a file outside the
    media root (INVALID_ARGUMENT)."""

    reason = MediaReason.BAD_REFERENCE


class MediaUndecodable(MediaError, InvalidInput):
    """The bytes are not a readable file of a format the classifier decodes (corrupt,
    truncated, unknown or unsupported format) (INVALID_ARGUMENT)."""

    reason = MediaReason.UNDECODABLE


class MediaAccessDenied(MediaError, PermissionDenied):
    """The store refused access (PERMISSION_DENIED)."""

    reason = MediaReason.ACCESS_DENIED


class MediaUnavailable(MediaError, NotReady):
    """The store could not be reached or failed (UNAVAILABLE: the pipeline retries it)."""

    reason = MediaReason.UNAVAILABLE


MEDIA_REASONS = frozenset(
    v for k, v in vars(MediaReason).items() if not k.startswith("_") and isinstance(v, str)
)
_PREFIX = re.compile(r"^(media_[a-z_]+): ")


def media_reason(message: str) -> str | None:
    """The media reason code a status message starts with (see the module docstring), if any."""
    match = _PREFIX.match(message)
    if match is None or match.group(1) not in MEDIA_REASONS:
        return None
    return match.group(1)
