"""OCR text -> the text models' scores, through the text service.

Decision: the vision service calls the text service (its ClassifierService, over gRPC) rather
than loading the text model in-process. Why: (1) one place scores text, so OCR text gets the
same sanitising, chunking of long texts, thresholds, evidence spans and model version as a
caption, and a text-model upgrade needs no vision release; (2) the modality packages are
independent by contract (pyproject's import-linter layers: vision may not import text), and
moving the text model into core would make every service carry it; (3) vision pods (GPU) do not
hold a text encoder each, and text scales on its own. The cost is one extra call per image with
text (a few ms; images without OCR text make none). When the text service cannot answer, the
request fails with NotReady (UNAVAILABLE), so the pipeline's missing-signal policy decides
instead of the image silently passing as text-free.

Each OCR'd frame is one text part: its lines, in reading order, joined by newlines and cut at
`max_chars`; the text service's span evidence is mapped back to the OCR lines (and their boxes)
it covers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from crossguard.core.results import ClassifierResult
from crossguard.vision.ocr import OcrLine


class TextScorer(Protocol):
    """Scores text parts: the text service (crossguard.core.remote_text) or any object with
    the same call."""

    async def classify_texts(
        self, content_id: str, parts: Sequence[tuple[str, str]]
    ) -> ClassifierResult: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class FrameText:
    """The text of one OCR'd frame as sent to the text service, with each line's offsets."""

    text: str
    # (start, end) in `text` of each line that was included, and that line's index in the
    # OCR result (blank lines are left out).
    offsets: list[tuple[int, int]]
    line_indices: list[int]

    def scorable(self, min_chars: int) -> bool:
        """Holds at least `min_chars` letters and digits, so it can say something."""
        return sum(ch.isalnum() for ch in self.text) >= max(1, min_chars)

    def lines_in(self, start: int, end: int) -> list[int]:
        """OCR line indices of the lines that overlap [start, end)."""
        return [
            self.line_indices[k] for k, (s, e) in enumerate(self.offsets) if s < end and start < e
        ]


def frame_text(lines: Sequence[OcrLine], max_chars: int) -> FrameText:
    """Join lines with newlines, stopping before `max_chars` is passed."""
    pieces: list[str] = []
    offsets: list[tuple[int, int]] = []
    indices: list[int] = []
    pos = 0
    for index, line in enumerate(lines):
        text = line.text.strip()
        if not text:
            continue
        if pos + len(text) > max_chars:
            break
        offsets.append((pos, pos + len(text)))
        indices.append(index)
        pieces.append(text)
        pos += len(text) + 1
    return FrameText("\n".join(pieces), offsets, indices)
