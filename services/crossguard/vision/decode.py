"""Safe image decoding with Pillow: JPEG, PNG, WebP and GIF (animated GIF/WebP sampled).

Every check that can be made before pixels are decoded is made first: bytes, the format sniffed
from the magic bytes against the declared mime type, signatures of other file formats hidden in
the same bytes (polyglots), pixels and frames from the header. Then the sampled frames are
decoded; a truncated or corrupted stream is an ImageDecodeError, never a partial image (Pillow's
LOAD_TRUNCATED_IMAGES stays off). Each error is a domain error whose `reason` is the short code
the pipeline writes into the dead-letter record.

`decode_image` is a plain function of bytes: the service runs it in a bounded pool of worker
processes (crossguard.vision.decode_pool) that kills a decoder past its time limit.
"""

from __future__ import annotations

import io
import re
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.media.errors import MediaReason
from crossguard.vision.settings import DecodeLimits

# Pillow format name -> the mime types that may declare it.
FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": ("image/jpeg", "image/jpg", "image/pjpeg"),
    "PNG": ("image/png",),
    "WEBP": ("image/webp",),
    "GIF": ("image/gif",),
}
MIME_TYPES: frozenset[str] = frozenset(m for ms in FORMATS.values() for m in ms)

# Markup or script that a browser or interpreter would act on if the file were served as such.
# Tokens of 5+ bytes only: in 20 MB of random compressed pixels a shorter one turns up by chance.
_ACTIVE_CONTENT = re.compile(rb"<(script|html|svg[\s>]|iframe|body|\?php)|javascript:", re.I)
# A PDF reader accepts its header anywhere in the first 1024 bytes.
_PDF_HEADER_WINDOW = 1024
_PNG_IEND = b"IEND\xaeB`\x82"

# Errors Pillow's decoders raise on corrupted or truncated data.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, KeyError)


class _Reasoned(Exception):
    """The message starts with the reason code, `<reason>: <detail>` (the media errors'
    convention, core.media.errors): the pipeline reads the code back from the classifier's
    status message and dead-letters the item with it. Only the detail is the exception's
    argument, so that the error pickles across the decode pool unchanged."""

    reason = ""

    def __str__(self) -> str:
        return f"{self.reason}: {super().__str__()}"


class ImageError(_Reasoned, InvalidInput):
    """Base of the image input errors; `reason` is the dead-letter reason code."""

    reason = MediaReason.IMAGE_CORRUPT


class UnsupportedImage(ImageError):
    """Not one of the supported formats, or not the format its mime type declares."""

    reason = MediaReason.IMAGE_UNSUPPORTED


class ImageDecodeError(ImageError):
    """Corrupted or truncated image data."""

    reason = MediaReason.IMAGE_CORRUPT


class PolyglotImage(ImageError):
    """The bytes are also another kind of file (archive, PDF, markup or script)."""

    reason = MediaReason.IMAGE_POLYGLOT


class ImageTooLarge(_Reasoned, LimitExceeded):
    """An explicit limit (bytes, pixels, sides, frames) was exceeded."""

    reason = MediaReason.IMAGE_TOO_LARGE


class DecompressionBomb(ImageTooLarge):
    """The header declares more pixels than the limit (a small file that decodes huge)."""

    reason = MediaReason.IMAGE_DECOMPRESSION_BOMB


class DecodeTimeout(_Reasoned, LimitExceeded):
    """Decoding took longer than the limit; the decoder was stopped."""

    reason = MediaReason.IMAGE_DECODE_TIMEOUT


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the file and RGB pixels [h, w, 3] uint8."""

    index: int
    pixels: np.ndarray


@dataclass(frozen=True)
class DecodedImage:
    format: str
    width: int
    height: int
    # Frames the file declares (1 for still images) and the ones decoded, in order.
    n_frames: int
    frames: list[Frame]


def sniff_format(data: bytes) -> str | None:
    """The Pillow format name from the magic bytes, or None when it is none of FORMATS."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def check_polyglot(data: bytes, fmt: str) -> None:
    """Raise PolyglotImage when `data` is also an archive, a PDF, markup or script, or (PNG)
    carries data after its last chunk."""
    found: str | None = None
    if zipfile.is_zipfile(io.BytesIO(data)):
        found = "a ZIP archive (central directory at the end)"
    elif b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        found = "a PDF header"
    elif (m := _ACTIVE_CONTENT.search(data)) is not None:
        found = f"markup or script ({m.group(0)[:16]!r} at byte {m.start()})"
    elif fmt == "PNG":
        end = data.rfind(_PNG_IEND)
        if end >= 0 and len(data) - (end + len(_PNG_IEND)) > 0:
            found = f"{len(data) - end - len(_PNG_IEND)} bytes after the PNG's IEND chunk"
    if found is not None:
        raise PolyglotImage(f"{fmt} image is also another kind of file: {found}")


def _check_declared(fmt: str | None, mime_type: str, data: bytes) -> str:
    mime = mime_type.split(";", 1)[0].strip().lower()
    if fmt is None:
        head = data[:8].hex(" ")
        raise UnsupportedImage(
            f"not a JPEG, PNG, WebP or GIF image (declared {mime or 'no mime type'!s}; "
            f"first bytes {head})"
        )
    if mime and mime not in MIME_TYPES:
        raise UnsupportedImage(
            f"unsupported mime type {mime!r}; supported: {', '.join(sorted(MIME_TYPES))}"
        )
    if mime and mime not in FORMATS[fmt]:
        raise UnsupportedImage(f"declared {mime!r} but the bytes are a {fmt} image")
    return fmt


def sample_indices(n_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly from the first to the last (all when fewer)."""
    if n_frames <= count:
        return list(range(n_frames))
    return (
        sorted({round(i * (n_frames - 1) / (count - 1)) for i in range(count)})
        if count > 1
        else [0]
    )


def _to_rgb(frame: Image.Image) -> np.ndarray:
    """RGB pixels; transparency is composited over white, as a viewer on a light page shows
    it (dark text on a transparent background stays legible for OCR)."""
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
    return np.asarray(frame.convert("RGB"))


def decode_image(data: bytes, mime_type: str, limits: DecodeLimits) -> DecodedImage:
    """Decode `data` under `limits`; raises an ImageError or LimitExceeded subclass on bad
    input. Blocking and CPU-bound: run it in the decode pool."""
    if len(data) == 0:
        raise ImageDecodeError("empty image (0 bytes)")
    if len(data) > limits.max_image_bytes:
        raise ImageTooLarge(
            f"image has {len(data)} bytes; the limit is {limits.max_image_bytes} "
            "(CROSSGUARD_VISION_MAX_IMAGE_BYTES)"
        )
    fmt = _check_declared(sniff_format(data), mime_type, data)
    check_polyglot(data, fmt)

    with warnings.catch_warnings():
        # Pillow's own bomb check warns at MAX_IMAGE_PIXELS and raises at twice that; ours
        # below is explicit and stricter, so its warning is noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data), formats=[fmt])
        except Image.DecompressionBombError as exc:
            raise DecompressionBomb(f"{fmt} image: {exc}") from exc
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(f"corrupted {fmt} image header: {exc}") from exc
        with img:
            return _decode_frames(img, fmt, limits)


def _decode_frames(img: Image.Image, fmt: str, limits: DecodeLimits) -> DecodedImage:
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"{fmt} image declares a size of {width}x{height}")
    if width > limits.max_side or height > limits.max_side:
        raise ImageTooLarge(
            f"{fmt} image is {width}x{height}; the limit is {limits.max_side} pixels per side "
            "(CROSSGUARD_VISION_MAX_SIDE)"
        )
    pixels = width * height
    if pixels > limits.max_pixels:
        raise DecompressionBomb(
            f"{fmt} image declares {width}x{height} = {pixels} pixels; the limit is "
            f"{limits.max_pixels} (CROSSGUARD_VISION_MAX_PIXELS)"
        )
    try:
        n_frames = int(getattr(img, "n_frames", 1))
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"corrupted {fmt} animation: {exc}") from exc
    if n_frames > limits.max_frames:
        raise ImageTooLarge(
            f"{fmt} animation has {n_frames} frames; the limit is {limits.max_frames} "
            "(CROSSGUARD_VISION_MAX_FRAMES)"
        )
    # Seeking to frame k decodes the frames before it: sample only within the pixel budget.
    reachable = max(1, min(n_frames, limits.max_total_pixels // pixels))
    indices = sample_indices(reachable, limits.sample_frames)
    side = limits.working_side
    if fmt == "JPEG":
        # Let libjpeg decode at a reduced scale (1/2, 1/4, 1/8) when the image is much larger.
        img.draft("RGB", (side, side))
    frames: list[Frame] = []
    for index in indices:
        try:
            if n_frames > 1:
                img.seek(index)
            img.load()
            frame = ImageOps.exif_transpose(img) if fmt == "JPEG" else img
            if max(frame.size) > side:
                frame = frame.copy()
                frame.thumbnail((side, side), Image.Resampling.BILINEAR)
            frames.append(Frame(index, _to_rgb(frame)))
        except _DECODE_ERRORS as exc:
            raise ImageDecodeError(
                f"corrupted or truncated {fmt} image (frame {index}): {exc}"
            ) from exc
    return DecodedImage(fmt, width, height, n_frames, frames)
