"""Plain domain types for classifier results, shared by every modality and the pipeline.

Domain code works with these; servicers and clients convert at the edge (core.proto_convert).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from crossguard.core.taxonomy import Category


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"


@dataclass(frozen=True)
class Score:
    category: Category
    score: float
    severity: int


# --- evidence: why a category scored as it did -----------------------------------------------
# Every kind names the part it comes from, the category it explains and its weight (how much it
# moved the score: the drop when it is removed, a similarity, or 1.0 for an exact match).


@dataclass(frozen=True)
class TextSpan:
    """Code points [start, end) of a text, and the text they hold."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ImageRegion:
    """A rectangle of an image in pixels (x, y: its top-left corner)."""

    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class AudioRange:
    """Milliseconds [start_ms, end_ms) of an audio part."""

    start_ms: int
    end_ms: int


@dataclass(frozen=True)
class TextSpanEvidence:
    """A span of a text part (start/end in code points of the part as sent)."""

    part_id: str
    category: Category
    weight: float
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class ImageRegionEvidence:
    """A region of an image part."""

    part_id: str
    category: Category
    weight: float
    region: ImageRegion
    # The model (or hash kind) that produced it and, for an animation, the frame it is from.
    model: str = ""
    frame_index: int = 0


@dataclass(frozen=True)
class AudioRangeEvidence:
    """A time range of an audio part."""

    part_id: str
    category: Category
    weight: float
    time_range: AudioRange


@dataclass(frozen=True)
class DerivedTextEvidence:
    """Text read from a media part (OCR of an image, ASR of audio) that drove the category:
    `text` is the text read; `location`, when known, is where in it (a span of `text`) or
    where in the part it was read (an image region, an audio time range)."""

    part_id: str
    category: Category
    weight: float
    text: str
    location: TextSpan | ImageRegion | AudioRange | None = None
    # The model (or hash kind) that produced it and, for an animation, the frame it is from.
    model: str = ""
    frame_index: int = 0


@dataclass(frozen=True)
class HashMatchEvidence:
    """The part matched an entry of a known-bad hash bank (e.g. a perceptual hash list):
    the bank's name, the match's distance (0 = identical hash) and the entry's id."""

    part_id: str
    category: Category
    weight: float
    bank: str
    distance: int
    entry_id: str
    # The model (or hash kind) that produced it and, for an animation, the frame it is from.
    model: str = ""
    frame_index: int = 0


Evidence = (
    TextSpanEvidence
    | ImageRegionEvidence
    | AudioRangeEvidence
    | DerivedTextEvidence
    | HashMatchEvidence
)


@dataclass(frozen=True)
class TimedText:
    """A piece of transcript and the audio time range it was heard in."""

    time_range: AudioRange
    text: str


@dataclass(frozen=True)
class Transcript:
    """The speech heard in one audio part (speech to text on voice activity only): the
    language detected ("" when nothing was transcribed), the guards that fired against known
    speech-to-text failures, and how much of the part was speech."""

    part_id: str
    language: str
    language_probability: float
    segments: list[TimedText] = field(default_factory=list)
    guards: list[str] = field(default_factory=list)
    duration_ms: int = 0
    speech_ms: int = 0


@dataclass(frozen=True)
class StageTime:
    stage: str
    millis: float


@dataclass(frozen=True)
class UnreadPart:
    """A part the classifier could not read, so its scores say nothing about it (`reason`
    e.g. "unsupported_language", `detail` e.g. "de 0.99"). The pipeline turns each into a
    missing signal of the modality, which the policy's fallback decides (never a silent allow)."""

    part_id: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class PartEmbedding:
    """One part's L2-normalised embedding by one model (name, version): e.g. an image's CLIP
    image embedding, which the consistency service compares with the caption's CLIP text
    embedding."""

    part_id: str
    model: tuple[str, str]
    vector: tuple[float, ...]


@dataclass(frozen=True)
class ClassifierResult:
    modality: Modality
    scores: list[Score]
    evidence: list[Evidence] = field(default_factory=list)
    # (name, version) of every model that contributed.
    models: list[tuple[str, str]] = field(default_factory=list)
    timings: list[StageTime] = field(default_factory=list)
    unread: list[UnreadPart] = field(default_factory=list)
    # Audio parts' transcripts (audio service only).
    transcripts: list[Transcript] = field(default_factory=list)
    # Parts' embeddings (vision service with a CLIP model).
    embeddings: list[PartEmbedding] = field(default_factory=list)

    def score_of(self, category: Category) -> float | None:
        for s in self.scores:
            if s.category == category:
                return s.score
        return None


def max_scores(results: Iterable[ClassifierResult]) -> list[Score]:
    """Pass-through fusion: the highest score per category over all results (any modality can
    raise a category, none can hide it)."""
    best: dict[Category, Score] = {}
    for result in results:
        for s in result.scores:
            current = best.get(s.category)
            if current is None or s.score > current.score:
                best[s.category] = s
    return list(best.values())
