"""Safe decoding: formats, animations, limits and the clear errors for bad input (decode_image
by plain calls; the process pool is exercised by the integration tests)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image

from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.media import media_reason
from crossguard.vision.decode import (
    DecompressionBomb,
    ImageDecodeError,
    ImageTooLarge,
    PolyglotImage,
    UnsupportedImage,
    decode_image,
    sample_indices,
    sniff_format,
)
from crossguard.vision.settings import DecodeLimits

pytestmark = pytest.mark.unit

Encode = Callable[..., bytes]


@pytest.fixture
def encode() -> Encode:
    """Factory: a noisy RGB image of `size` encoded as `fmt` (noise defeats compression, so
    a truncated copy really is missing pixels)."""

    def make(fmt: str = "JPEG", size: tuple[int, int] = (96, 64), seed: int = 0) -> bytes:
        rng = np.random.default_rng(seed)
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format=fmt)
        return buf.getvalue()

    return make


def animated(fmt: str, count: int) -> bytes:
    frames = [Image.new("RGB", (32, 24), (i * 8 % 256, 40, 200 - i)) for i in range(count)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=40)
    return buf.getvalue()


LIMITS = DecodeLimits()


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
)
def test_decodes_each_supported_format(encode: Encode, fmt: str, mime: str) -> None:
    image = decode_image(encode(fmt), mime, LIMITS)
    assert (image.format, image.width, image.height, image.n_frames) == (fmt, 96, 64, 1)
    assert [f.index for f in image.frames] == [0]
    assert image.frames[0].pixels.shape == (64, 96, 3)
    assert image.frames[0].pixels.dtype == np.uint8


def test_empty_mime_type_trusts_the_sniffed_format(encode: Encode) -> None:
    assert decode_image(encode("PNG"), "", LIMITS).format == "PNG"


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_frames_are_sampled_evenly_with_their_indices(fmt: str) -> None:
    limits = DecodeLimits(sample_frames=4)
    image = decode_image(animated(fmt, 10), f"image/{fmt.lower()}", limits)
    assert image.n_frames == 10
    assert [f.index for f in image.frames] == [0, 3, 6, 9]
    # The pixels are those of the sampled frames (frame i is red i*8).
    assert [int(f.pixels[0, 0, 0]) for f in image.frames] == pytest.approx([0, 24, 48, 72], abs=8)


def test_sample_indices() -> None:
    assert sample_indices(3, 8) == [0, 1, 2]
    assert sample_indices(100, 3) == [0, 50, 99]
    assert sample_indices(100, 1) == [0]


def test_large_images_are_scaled_to_the_working_side(encode: Encode) -> None:
    image = decode_image(encode("PNG", (900, 300)), "image/png", DecodeLimits(working_side=300))
    assert (image.width, image.height) == (900, 300)
    assert image.frames[0].pixels.shape == (100, 300, 3)


def test_transparency_is_composited_over_white() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(buf, format="PNG")
    pixels = decode_image(buf.getvalue(), "image/png", LIMITS).frames[0].pixels
    assert (pixels == 255).all()


def test_truncated_file_is_a_decode_error(encode: Encode) -> None:
    data = encode("JPEG", (256, 256))
    with pytest.raises(ImageDecodeError, match="truncated") as info:
        decode_image(data[: len(data) // 2], "image/jpeg", LIMITS)
    assert info.value.reason == "media_image_corrupt"
    assert isinstance(info.value, InvalidInput)
    # The reason leads the message, where the pipeline reads it for the dead-letter record.
    assert str(info.value).startswith("media_image_corrupt: corrupted or truncated JPEG")
    assert media_reason(str(info.value)) == "media_image_corrupt"


def test_truncated_png_is_a_decode_error(encode: Encode) -> None:
    data = encode("PNG", (256, 256))
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 3], "image/png", LIMITS)


def test_corrupted_header_is_a_decode_error(encode: Encode) -> None:
    data = bytearray(encode("PNG"))
    data[16:24] = b"\xff" * 8  # width/height in IHDR, CRC now wrong
    with pytest.raises(ImageDecodeError):
        decode_image(bytes(data), "image/png", LIMITS)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buf, format="PNG")  # 144 Mpx in ~20 kB
    assert len(buf.getvalue()) < 100_000
    with pytest.raises(DecompressionBomb, match="CROSSGUARD_VISION_MAX_PIXELS") as info:
        decode_image(buf.getvalue(), "image/png", LIMITS)
    assert info.value.reason == "media_image_decompression_bomb"
    assert isinstance(info.value, LimitExceeded)


def test_byte_side_and_frame_limits(encode: Encode) -> None:
    with pytest.raises(ImageTooLarge, match="CROSSGUARD_VISION_MAX_IMAGE_BYTES"):
        decode_image(encode("PNG"), "image/png", DecodeLimits(max_image_bytes=100))
    with pytest.raises(ImageTooLarge, match="CROSSGUARD_VISION_MAX_SIDE"):
        decode_image(encode("PNG", (200, 10)), "image/png", DecodeLimits(max_side=100))
    with pytest.raises(ImageTooLarge, match="CROSSGUARD_VISION_MAX_FRAMES"):
        decode_image(animated("GIF", 12), "image/gif", DecodeLimits(max_frames=10))


def test_total_pixel_budget_limits_how_far_an_animation_is_sampled() -> None:
    # 32×24 = 768 px a frame; a budget of 4 frames' pixels samples only frames 0..3.
    limits = DecodeLimits(max_total_pixels=768 * 4, sample_frames=8)
    image = decode_image(animated("GIF", 20), "image/gif", limits)
    assert image.n_frames == 20
    assert [f.index for f in image.frames] == [0, 1, 2, 3]


def test_wrong_mime_type_and_non_images(encode: Encode) -> None:
    with pytest.raises(UnsupportedImage, match="declared 'image/png' but the bytes are a JPEG"):
        decode_image(encode("JPEG"), "image/png", LIMITS)
    with pytest.raises(UnsupportedImage, match="unsupported mime type 'image/tiff'"):
        decode_image(encode("JPEG"), "image/tiff", LIMITS)
    with pytest.raises(UnsupportedImage, match="not a JPEG, PNG, WebP or GIF"):
        decode_image(b"%PDF-1.7\n...", "image/jpeg", LIMITS)
    with pytest.raises(ImageDecodeError, match="empty"):
        decode_image(b"", "image/jpeg", LIMITS)
    assert sniff_format(b"BM\x00\x00") is None  # BMP is not accepted


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("payload.js", "alert(1)")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fmt", "suffix", "found"),
    [
        ("JPEG", _zip_bytes(), "ZIP archive"),
        ("GIF", b"<script>alert(document.cookie)</script>", "markup or script"),
        ("JPEG", b"<?php system($_GET['c']); ?>", "markup or script"),
        ("PNG", b"\x00extra bytes after IEND", "after the PNG's IEND"),
    ],
)
def test_polyglots_are_refused(encode: Encode, fmt: str, suffix: bytes, found: str) -> None:
    with pytest.raises(PolyglotImage, match=found) as info:
        decode_image(encode(fmt) + suffix, f"image/{fmt.lower()}", LIMITS)
    assert info.value.reason == "media_image_polyglot"


def test_pdf_header_in_the_first_kilobyte_is_a_polyglot(encode: Encode) -> None:
    data = bytearray(encode("JPEG"))
    # A JPEG comment segment right after SOI carrying a PDF header.
    comment = b"%PDF-1.4 hidden"
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    data[2:2] = segment
    with pytest.raises(PolyglotImage, match="PDF"):
        decode_image(bytes(data), "image/jpeg", LIMITS)
