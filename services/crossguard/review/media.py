"""Showing referenced media: the store holds only a part's URI, type, size and sha256; the bytes
are read from the reference (crossguard.core.media: file:// under CROSSGUARD_MEDIA_FILE_ROOT,
s3://, with its size limit, timeout and sha256 check) when a reviewer opens the task, and are
never stored.

Until the reviewer reveals a task, images are served as a server-side preview (greyscale,
downscaled, blurred), so the original bytes never reach a browser that has not asked for them;
the page's CSS blur is only the visual cue."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageFilter, UnidentifiedImageError

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


PREVIEW_TYPE = "image/jpeg"


def concealed_preview(data: bytes, max_side: int, max_pixels: int) -> bytes:
    """A greyscale JPEG at most max_side pixels on its longest side, Gaussian-blurred enough
    that a face or text is not legible; MediaNotShown when the bytes are not a decodable image
    or it is over max_pixels (checked from the header, before decoding)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise MediaNotShown(f"image of {im.width}x{im.height} is over the preview limit")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im.draft("L", (max_side, max_side))  # JPEG: decode at a reduced scale
                grey = im.convert("L")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaNotShown(f"image could not be decoded: {type(exc).__name__}") from None
    except Image.DecompressionBombWarning:
        raise MediaNotShown("image is over the decoder's pixel limit") from None
    grey.thumbnail((max_side, max_side))
    blurred = grey.filter(ImageFilter.GaussianBlur(radius=max(2.0, max_side / 12)))
    out = io.BytesIO()
    blurred.save(out, format="JPEG", quality=70)
    return out.getvalue()
