"""The texts of an item that the consistency checks compare: the caption (the item's text
parts), the text read in its images (OCR: derived-text evidence of image results) and the words
spoken in its audio (ASR: derived-text evidence of audio results)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from crossguard.core.errors import LimitExceeded
from crossguard.core.results import (
    AudioRange,
    ClassifierResult,
    DerivedTextEvidence,
    ImageRegion,
    Modality,
    TextSpan,
)


class TextKind(StrEnum):
    CAPTION = "caption"
    OCR = "ocr"
    TRANSCRIPT = "transcript"


KIND_MODALITY = {
    TextKind.CAPTION: Modality.TEXT,
    TextKind.OCR: Modality.IMAGE,
    TextKind.TRANSCRIPT: Modality.AUDIO,
}
KIND_WORDS = {
    TextKind.CAPTION: "caption",
    TextKind.OCR: "text in the image",
    TextKind.TRANSCRIPT: "spoken words",
}


@dataclass(frozen=True)
class TextView:
    """One kind of text of an item, its parts' texts joined in reading order."""

    kind: TextKind
    part_ids: tuple[str, ...]
    text: str

    @property
    def modality(self) -> Modality:
        return KIND_MODALITY[self.kind]


def _order(location: TextSpan | ImageRegion | AudioRange | None) -> tuple[int, int]:
    if isinstance(location, ImageRegion):
        return (location.y, location.x)  # lines top to bottom, then left to right
    if isinstance(location, AudioRange):
        return (location.start_ms, location.end_ms)
    if isinstance(location, TextSpan):
        return (location.start, location.end)
    return (0, 0)


def _derived(results: Sequence[ClassifierResult], modality: Modality) -> list[tuple[str, str]]:
    """(part id, text) of every distinct piece of derived text the modality's results carry
    (a line read once but evidence for several categories counts once), in reading order."""
    seen: dict[tuple[str, tuple[int, int], str], None] = {}
    for r in results:
        if r.modality != modality:
            continue
        for e in r.evidence:
            if isinstance(e, DerivedTextEvidence) and e.text.strip():
                seen.setdefault((e.part_id, _order(e.location), e.text.strip()), None)
    return [(part, text) for part, _, text in sorted(seen)]


def _transcripts(results: Sequence[ClassifierResult]) -> list[tuple[str, str]]:
    """(part id, text) of the full transcripts audio results carry. The audio service is adding
    `ClassifierResult.transcripts` (its derived-text evidence holds only the flagged pieces); read
    by attribute so that this works before and after it lands."""
    out: list[tuple[str, str]] = []
    for r in results:
        if r.modality != Modality.AUDIO:
            continue
        for t in getattr(r, "transcripts", None) or ():
            text = " ".join(s.text.strip() for s in t.segments if s.text.strip())
            if text:
                out.append((t.part_id, text))
    return out


def text_views(
    captions: Sequence[tuple[str, str]],
    results: Sequence[ClassifierResult],
    max_chars: int,
) -> list[TextView]:
    """The item's caption, OCR and transcript texts (those present), each at most `max_chars`
    characters (LimitExceeded beyond: the limit is a setting)."""
    pieces = {
        TextKind.CAPTION: [(p, t.strip()) for p, t in captions if t.strip()],
        TextKind.OCR: _derived(results, Modality.IMAGE),
        TextKind.TRANSCRIPT: _transcripts(results) or _derived(results, Modality.AUDIO),
    }
    views: list[TextView] = []
    for kind, found in pieces.items():
        if not found:
            continue
        text = "\n".join(t for _, t in found)
        if len(text) > max_chars:
            raise LimitExceeded(
                f"{kind.value} text is {len(text)} characters; the limit is {max_chars} "
                "(CROSSGUARD_CONSISTENCY_MAX_TEXT_CHARS)"
            )
        part_ids = tuple(dict.fromkeys(p for p, _ in found))
        views.append(TextView(kind, part_ids, text))
    return views


def combined_text(views: Sequence[TextView]) -> str:
    """The item's texts read together, the way a person sees the post: caption, then the text
    in the image, then the spoken words."""
    return "\n".join(v.text for v in views)
