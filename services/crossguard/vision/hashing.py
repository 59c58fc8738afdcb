"""Perceptual hashes of decoded frames: PDQ (pdqhash, Meta's reference algorithm) and pHash
(imagehash), with the 8 flip/rotate variants so that a mirrored or rotated copy of a banked
image still matches. Hashes travel as hex strings (PDQ: 64 hex digits = 256 bits; pHash: 16 =
64 bits) and as packed uint8 rows for the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from PIL import Image


class HashKind(StrEnum):
    PDQ = "pdq"
    PHASH = "phash"


BITS: dict[HashKind, int] = {HashKind.PDQ: 256, HashKind.PHASH: 64}

# The 8 symmetries of the square, as PIL transpositions (None: the image itself).
_DIHEDRAL: tuple[Image.Transpose | None, ...] = (
    None,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_180,
    Image.Transpose.ROTATE_270,
    Image.Transpose.FLIP_LEFT_RIGHT,
    Image.Transpose.FLIP_TOP_BOTTOM,
    Image.Transpose.TRANSPOSE,
    Image.Transpose.TRANSVERSE,
)
# pHash is computed on 32×32 greyscale: transform a small copy, not the full frame.
_PHASH_WORKING_SIDE = 128


@dataclass(frozen=True)
class FrameHashes:
    """Hashes of one frame: PDQ and its quality (0-100), and the pHash; each list holds the
    frame's own hash first, then its flip/rotate variants."""

    pdq: list[str]
    pdq_quality: int
    phash: list[str]


def hash_kind(value: str) -> HashKind:
    """The kind of a hex hash, from its length."""
    n = len(value.strip())
    for kind, bits in BITS.items():
        if n == bits // 4:
            return kind
    raise ValueError(f"hash {value[:80]!r} has {n} hex digits; PDQ has 64 and pHash 16")


def normalise_hash(value: str, kind: HashKind | None = None) -> tuple[HashKind, str]:
    """(kind, lower-case hex) of a hash given as hex; ValueError when it is not one."""
    text = value.strip().lower()
    found = hash_kind(text)
    if kind is not None and found != kind:
        raise ValueError(f"{text[:80]!r} is not a {kind.value} hash ({BITS[kind] // 4} hex digits)")
    try:
        bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{text[:80]!r} is not a hexadecimal hash") from None
    return found, text


def to_packed(hashes: list[str], kind: HashKind) -> np.ndarray:
    """Hex hashes -> [n, bits/8] uint8 rows (the layout the hash index takes)."""
    width = BITS[kind] // 8
    if not hashes:
        return np.zeros((0, width), dtype=np.uint8)
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hashes), dtype=np.uint8).reshape(
        len(hashes), width
    )


def _bits_to_hex(bits: np.ndarray) -> str:
    return np.packbits(np.asarray(bits, dtype=np.uint8).reshape(-1)).tobytes().hex()


def hash_frame(rgb: np.ndarray) -> FrameHashes:
    """PDQ (+ dihedral variants, from pdqhash) and pHash (+ the same variants) of one frame."""
    import imagehash
    import pdqhash

    vectors, quality = pdqhash.compute_dihedral(np.ascontiguousarray(rgb, dtype=np.uint8))
    pdq = [_bits_to_hex(v) for v in vectors]
    small = Image.fromarray(rgb, "RGB")
    small.thumbnail((_PHASH_WORKING_SIDE, _PHASH_WORKING_SIDE), Image.Resampling.BILINEAR)
    phash = [str(imagehash.phash(small if t is None else small.transpose(t))) for t in _DIHEDRAL]
    return FrameHashes(pdq=pdq, pdq_quality=int(quality), phash=phash)
