"""The OCR part of `crossguard eval vision`: which labeled texts are rendered, the choose/report
halves, per-text rows, the paired bootstrap of the AUPRC difference and the printed table.

Texts: every labeled OpenAI validation text (182 here), in sha256 order, then Davidson validation
tweets (hate / not hate alternately, sha256 order within each) up to the requested count: the
OpenAI validation split alone has fewer than the 200-300 texts a 3-point gap needs.

Halves: a text is in "choose" when the second byte of sha256(text) is even, else in "report"
(the first byte already decides the train/validation split). Decisions about OCR and rendering
are made looking at "choose" only; "report" is printed beside it and never looked into.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from crossguard.core.taxonomy import Category
from crossguard.models.data import Example, load_davidson, load_openai, select
from crossguard.models.evaluate import average_precision

Part = Literal["choose", "report"]
PARTS: tuple[Part, ...] = ("choose", "report")
HEAD_CATEGORIES = [
    Category.SEXUAL,
    Category.HATE,
    Category.VIOLENCE,
    Category.HARASSMENT,
    Category.SELF_HARM,
    Category.SEXUAL_MINORS,
    Category.HATE_THREATENING,
    Category.VIOLENCE_GRAPHIC,
]
BOOTSTRAP_RESAMPLES = 2000


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def part_of(text: str) -> Part:
    return "choose" if _digest(text)[1] % 2 == 0 else "report"


def choose_texts(count: int, examples: Sequence[Example] | None = None) -> list[Example]:
    """`count` labeled validation texts, deterministically (see the module docstring)."""
    if examples is None:
        examples = [*load_openai(), *load_davidson()]
    validation = [e for e in select(examples, "validation") if e.labels]
    validation.sort(key=lambda e: _digest(e.text))
    openai = [e for e in validation if e.source == "openai"]
    hate = [e for e in validation if e.source != "openai" and e.any_positive]
    other = [e for e in validation if e.source != "openai" and not e.any_positive]
    fill: list[Example] = []
    for pos, neg in zip(hate, other, strict=False):
        fill += [pos, neg]
    return [*openai, *fill][:count]


@dataclass
class OcrRow:
    """One rendered text: what was drawn, what OCR read, and both paths' scores."""

    key: str  # sha256(text)[:12], the text's name in the scores file
    source: str
    part: Part
    labels: dict[str, int]
    rendered: str
    read: str
    similarity: float
    direct: dict[str, float]
    via_ocr: dict[str, float]
    style: str = ""

    def label(self, category: Category | None) -> int | None:
        """The label for `category` (None: any category positive); None when not annotated."""
        if category is None:
            return int(any(v == 1 for v in self.labels.values())) if self.labels else None
        return self.labels.get(category.value)


def make_row(
    e: Example,
    rendered: str,
    read: str,
    similarity: float,
    direct: dict[Category, float],
    via_ocr: dict[Category, float],
    style: str,
) -> OcrRow:
    return OcrRow(
        key=_digest(e.text).hex()[:12],
        source=e.source,
        part=part_of(e.text),
        labels={c.value: v for c, v in e.labels.items()},
        rendered=rendered,
        read=read,
        similarity=similarity,
        direct={c.value: s for c, s in direct.items()},
        via_ocr={c.value: s for c, s in via_ocr.items()},
        style=style,
    )


def pick(scores: dict[str, float], category: Category | None) -> float:
    """A category's score; for None ("any") the highest over the head categories."""
    if category is None:
        return max((scores.get(c.value, 0.0) for c in HEAD_CATEGORIES), default=0.0)
    return scores.get(category.value, 0.0)


def paired_bootstrap(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of AP(y, b) - AP(y, a) over paired resamples of the texts
    (both scorings resampled with the same indices); resamples without a positive are
    skipped (AP is undefined there). Hand-written: scipy.stats.bootstrap's paired
    mode has no way to skip those, and with 3 positives about 5% of resamples have none."""
    rng = np.random.default_rng(seed)
    n = len(y)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        ys = y[idx]
        if ys.sum() == 0:
            continue
        diffs.append(average_precision(ys, b[idx]) - average_precision(ys, a[idx]))
    if not diffs:
        return math.nan, math.nan
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass(frozen=True)
class AuprcRow:
    part: str  # "choose", "report" or "all"
    category: str
    n: int
    positives: int
    direct: float
    ocr: float
    ci: tuple[float, float]

    @property
    def diff(self) -> float:
        return self.ocr - self.direct


def auprc_table(rows: Sequence[OcrRow], resamples: int = BOOTSTRAP_RESAMPLES) -> list[AuprcRow]:
    """Per part (choose, report, and all when both are there) and category (any, then each head
    category with at least 3 positives in that part): AUPRC directly and through OCR, and the
    paired bootstrap interval of the difference."""
    out: list[AuprcRow] = []
    present = [p for p in PARTS if any(r.part == p for r in rows)]
    for part in [*present, "all"] if len(present) > 1 else present:
        chosen = [r for r in rows if part == "all" or r.part == part]
        for cat in [None, *HEAD_CATEGORIES]:
            labelled = [(r, r.label(cat)) for r in chosen]
            pairs = [(r, v) for r, v in labelled if v is not None]
            y = np.array([v for _, v in pairs], dtype=np.int64)
            if len(y) == 0 or y.sum() < 3:
                continue
            a = np.array([pick(r.direct, cat) for r, _ in pairs])
            b = np.array([pick(r.via_ocr, cat) for r, _ in pairs])
            out.append(
                AuprcRow(
                    part,
                    "any" if cat is None else cat.value,
                    len(y),
                    int(y.sum()),
                    average_precision(y, a),
                    average_precision(y, b),
                    paired_bootstrap(y, a, b, resamples),
                )
            )
    return out


def format_table(table: Sequence[AuprcRow]) -> list[str]:
    lines = [
        f"{'part':<8}{'category':<18}{'n':>5}{'pos':>5}{'AUPRC text':>12}{'AUPRC OCR':>11}"
        f"{'diff':>8}   95% CI of diff"
    ]
    for r in table:
        lines.append(
            f"{r.part:<8}{r.category:<18}{r.n:>5}{r.positives:>5}{r.direct:>12.3f}{r.ocr:>11.3f}"
            f"{r.diff:>+8.3f}   [{r.ci[0]:+.3f}, {r.ci[1]:+.3f}]"
        )
    return lines


def write_rows(path: Path, rows: Sequence[OcrRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(asdict(r), ensure_ascii=False) + "\n")


def read_rows(path: Path) -> list[OcrRow]:
    with path.open(encoding="utf-8") as fh:
        return [OcrRow(**json.loads(line)) for line in fh if line.strip()]


class Progress:
    """ "k/n texts, rate, time left" every `every` texts."""

    def __init__(self, total: int, say: Callable[[str], None], clock: Callable[[], float]):
        self.total, self.say, self.clock = total, say, clock
        self.start = clock()

    def step(self, done: int, every: int = 20) -> None:
        if done % every and done != self.total:
            return
        elapsed = self.clock() - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (self.total - done) / rate if rate else math.nan
        self.say(f"OCR path: {done}/{self.total} texts, {rate:.2f}/s, ~{left:.0f} s left")
