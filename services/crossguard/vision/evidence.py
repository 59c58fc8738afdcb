"""What the vision classifier found in one image, for reviewers: per-model scores with the frame
that drove them, OCR lines with boxes, the known-bad hash match. Plain types, no gRPC."""

from __future__ import annotations

from dataclasses import dataclass, field

from crossguard.core.results import PartEmbedding
from crossguard.core.taxonomy import Category
from crossguard.vision.ocr import OcrLine


@dataclass(frozen=True)
class ModelSignal:
    """One model's scores on one image: the worst frame's, with that frame's index."""

    model: str
    version: str
    scores: dict[Category, float]
    frame_index: int


@dataclass(frozen=True)
class OcrFrameText:
    frame_index: int
    lines: list[OcrLine]
    # (category, indices of the lines) the text service's evidence spans point at.
    flagged: list[tuple[Category, list[int]]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


@dataclass(frozen=True)
class HashMatch:
    """A known-bad hash bank entry the image matched."""

    bank: str
    category: Category
    kind: str
    distance: int
    threshold: int
    entry_id: str
    entry_hash: str
    frame_index: int
    note: str = ""


@dataclass(frozen=True)
class ImageFindings:
    part_id: str
    format: str
    width: int
    height: int
    n_frames: int
    frames_scored: list[int]
    signals: list[ModelSignal] = field(default_factory=list)
    ocr: list[OcrFrameText] = field(default_factory=list)
    hash_match: HashMatch | None = None
    # Why a signal was not computed (e.g. "pdq: quality 12 < 50"), for reviewers.
    notes: list[str] = field(default_factory=list)
    # The image's CLIP image embedding (when a CLIP model is configured).
    embedding: PartEmbedding | None = None

    def scores(self) -> dict[Category, float]:
        """Each category's highest score over every signal; a hash match counts as 1.0."""
        out: dict[Category, float] = {}
        for signal in self.signals:
            for cat, value in signal.scores.items():
                out[cat] = max(out.get(cat, 0.0), value)
        if self.hash_match is not None:
            out[self.hash_match.category] = 1.0
        return out
