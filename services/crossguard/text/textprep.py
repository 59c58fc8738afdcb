"""Text preparation for the text safety service: sanitising (control/format characters removed,
NFKC) with a map back to the caller's code points, and word-unit chunking with overlap.

Everything here is pure and synchronous; offsets are Python string indices, i.e. Unicode code
points, which is what the Classifier API promises for spans.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# Characters removed before the model sees the text: C0/C1 controls (except tab, newline, CR),
# format characters (zero-width spaces/joiners, bidi overrides, BOM: common filter evasions),
# and lone surrogates (cannot come from a proto string, but can from a Python caller).
_KEEP_CONTROLS = frozenset("\t\n\r")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Cs"})
_DELETE_WHITESPACE_CONTROLS = str.maketrans("", "", "\t\n\r")

# Scripts written without spaces between words: every character is its own unit.
_NO_SPACE_SCRIPTS = (
    "\u0e00-\u0e7f"  # Thai
    "\u0e80-\u0eff"  # Lao
    "\u1000-\u109f"  # Myanmar
    "\u1780-\u17ff"  # Khmer
    "\u3040-\u30ff"  # Hiragana, Katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0002fa1f"  # CJK extensions B-F, compatibility supplement
)
# Longest run of non-space characters counted as one unit (URLs, base64, keyboard mashing).
MAX_UNIT_CHARS = 32
_UNIT = re.compile(rf"[{_NO_SPACE_SCRIPTS}]|[^\s{_NO_SPACE_SCRIPTS}]{{1,{MAX_UNIT_CHARS}}}")


@dataclass(frozen=True)
class SanitizedText:
    """`text` is what the model sees; `starts[i]`/`ends[i]` give the code point range of the
    caller's original text that produced `text[i]` (None: identity, nothing changed)."""

    original: str
    text: str
    starts: list[int] | None = None
    ends: list[int] | None = None

    @property
    def changed(self) -> bool:
        return self.starts is not None

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a non-empty [start, end) range of `text` back to the original text."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def sanitize(text: str) -> SanitizedText:
    """Remove control/format characters and apply NFKC, keeping an offset map.

    Normalisation runs per segment (a starter character and the combining marks after it), so
    every output character maps to the original segment it came from.
    """
    # Fast path (C speed): printable apart from tab/newline/CR and already NFKC.
    if text.translate(_DELETE_WHITESPACE_CONTROLS).isprintable() and unicodedata.is_normalized(
        "NFKC", text
    ):
        return SanitizedText(original=text, text=text)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    seg: list[str] = []
    seg_start = 0
    seg_end = 0

    def flush() -> None:
        if not seg:
            return
        normalized = unicodedata.normalize("NFKC", "".join(seg))
        out.append(normalized)
        starts.extend([seg_start] * len(normalized))
        ends.extend([seg_end] * len(normalized))
        seg.clear()

    for i, ch in enumerate(text):
        if ch not in _KEEP_CONTROLS and unicodedata.category(ch) in _DROP_CATEGORIES:
            continue
        if seg and unicodedata.combining(ch) == 0:
            flush()
        if not seg:
            seg_start = i
        seg.append(ch)
        seg_end = i + 1
    flush()
    return SanitizedText(original=text, text="".join(out), starts=starts, ends=ends)


@dataclass(frozen=True)
class Chunk:
    """A window of whole units of a sanitised text: units [first, last) and its code points
    [start, end) in the sanitised text."""

    first: int
    last: int
    start: int
    end: int


def units(text: str) -> list[tuple[int, int]]:
    """Word-like units as [start, end) ranges: whitespace-separated runs of at most
    MAX_UNIT_CHARS characters; each character of a script written without spaces."""
    return [m.span() for m in _UNIT.finditer(text)]


def chunk(
    spans: list[tuple[int, int]], *, max_units: int, overlap_units: int, max_chars: int
) -> list[Chunk]:
    """Cover all units with windows of at most `max_units` units and `max_chars` code points,
    consecutive windows sharing about `overlap_units` units (proportionally fewer when a
    window is cut short by `max_chars`)."""
    n = len(spans)
    if n == 0:
        return []
    chunks: list[Chunk] = []
    i = 0
    while True:
        j = i + 1
        while j < n and j - i < max_units and spans[j][1] - spans[i][0] <= max_chars:
            j += 1
        chunks.append(Chunk(first=i, last=j, start=spans[i][0], end=spans[j - 1][1]))
        if j >= n:
            return chunks
        overlap = min(overlap_units, (j - i) * overlap_units // max_units)
        i = max(i + 1, j - overlap)


# A unit ending in one of these ends a sentence (Latin, CJK full-width, Arabic, Devanagari).
_SENTENCE_END = frozenset(".!?…。！？｡؟۔।॥")


def sentences(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sentences as unit index ranges [first, last): a sentence ends at a unit ending in
    sentence punctuation, or where a line break follows."""
    out: list[tuple[int, int]] = []
    first = 0
    n = len(spans)
    for i, (_, end) in enumerate(spans):
        ends = text[end - 1] in _SENTENCE_END or (i + 1 < n and "\n" in text[end : spans[i + 1][0]])
        if ends:
            out.append((first, i + 1))
            first = i + 1
    if first < n:
        out.append((first, n))
    return out


def plan_chunks(
    text: str,
    spans: list[tuple[int, int]],
    *,
    whole_units: int,
    window_units: int,
    overlap_units: int,
    min_units: int,
    max_chars: int,
) -> list[Chunk]:
    """The pieces of a text the model scores.

    A text of at most `whole_units` units (and `max_chars` code points) is scored whole: the
    regime the heads were trained in. A longer text is scored per sentence, so one bad sentence
    is not diluted by pages of harmless ones: sentences shorter than `min_units` are merged
    with their neighbours (up to `window_units`), longer than `window_units` split into
    overlapping windows.
    """
    n = len(spans)
    if n == 0:
        return []
    if n <= whole_units and spans[-1][1] - spans[0][0] <= max_chars:
        return [Chunk(first=0, last=n, start=spans[0][0], end=spans[-1][1])]
    pieces: list[tuple[int, int]] = []
    for first, last in sentences(text, spans):
        if last - first <= window_units and spans[last - 1][1] - spans[first][0] <= max_chars:
            pieces.append((first, last))
            continue
        for c in chunk(
            spans[first:last],
            max_units=window_units,
            overlap_units=overlap_units,
            max_chars=max_chars,
        ):
            pieces.append((first + c.first, first + c.last))
    merged: list[tuple[int, int]] = []
    for first, last in pieces:
        if merged:
            p_first, p_last = merged[-1]
            small = (last - first) < min_units or (p_last - p_first) < min_units
            fits = (
                p_last == first
                and last - p_first <= window_units
                and spans[last - 1][1] - spans[p_first][0] <= max_chars
            )
            if small and fits:
                merged[-1] = (p_first, last)
                continue
        merged.append((first, last))
    return [Chunk(first=a, last=b, start=spans[a][0], end=spans[b - 1][1]) for a, b in merged]
