"""OCR text -> the text models' scores.

The vision service runs the text model in-process (crossguard.text.model.TextModel, the same
repository entries the text service serves) instead of calling the text service: OCR text is a
few lines per image, so a second network hop, a second deadline and a second failure mode per
image would cost more than the encoder (~90 MB, a few ms per line); and the vision service keeps
working when the text service is scaled down or restarting. Both load the same model files, so
scores agree with what the text service returns for the same text.

Lines are grouped, in reading order, into pieces of at most `chunk_words` words, each scored on
its own (the maximum counts), so that one harmful caption in a screenshot full of benign text is
not diluted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from crossguard.core.taxonomy import Category
from crossguard.vision.ocr import OcrLine

Predict = Callable[[Sequence[str]], Awaitable[list[dict[Category, float]]]]


@dataclass(frozen=True)
class TextPiece:
    text: str
    # Indices of the OCR lines it holds.
    lines: list[int]


def pieces(lines: Sequence[OcrLine], chunk_words: int, max_chars: int) -> list[TextPiece]:
    """Group lines into pieces of at most `chunk_words` words; text past `max_chars` is left
    out (a line longer than a piece is a piece of its own)."""
    out: list[TextPiece] = []
    words = 0
    current: list[int] = []
    used = 0
    for i, line in enumerate(lines):
        text = line.text.strip()
        if not text:
            continue
        if used + len(text) > max_chars:
            break
        used += len(text) + 1
        n = len(text.split())
        if current and words + n > chunk_words:
            out.append(TextPiece(" ".join(lines[k].text.strip() for k in current), current))
            current, words = [], 0
        current.append(i)
        words += n
    if current:
        out.append(TextPiece(" ".join(lines[k].text.strip() for k in current), current))
    return out


async def score_lines(
    lines: Sequence[OcrLine], predict: Predict, *, chunk_words: int, max_chars: int
) -> tuple[dict[Category, float], TextPiece | None]:
    """Each category's maximum over the pieces, and the piece with the highest score."""
    parts = pieces(lines, chunk_words, max_chars)
    if not parts:
        return {}, None
    outputs = await predict([p.text for p in parts])
    best: dict[Category, float] = {}
    top: tuple[float, TextPiece] | None = None
    for piece, probs in zip(parts, outputs, strict=True):
        for cat, value in probs.items():
            best[cat] = max(best.get(cat, 0.0), float(value))
            if top is None or value > top[0]:
                top = (float(value), piece)
    return best, (top[1] if top else None)
