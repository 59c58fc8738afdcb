"""Labeled moderation data and THE train/validation split used everywhere.

The split is a pure function of the text: validation = sha256(utf-8 text) first byte % 5 == 0
(~20%), everything else is train. Training, threshold selection (cross-validation inside train)
and evaluation all use `split_of` (via `select`); nothing chooses anything by looking at validation.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from crossguard.core.taxonomy import OPENAI_CODES, Category
from crossguard.models.settings import LabeledDataSettings

Split = Literal["train", "validation"]

OPENAI_FILE = "openai-moderation-dev.jsonl"
DAVIDSON_FILE = "davidson-labeled.csv"

# Categories with training labels in the OpenAI release, in a fixed order (head order).
OPENAI_CATEGORIES: tuple[Category, ...] = tuple(
    OPENAI_CODES[c] for c in ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
)


def default_data_dir() -> Path:
    """$CROSSGUARD_LABELED_DATA_DIR, else the shared moderation data next to the checkout."""
    configured = LabeledDataSettings().labeled_data_dir
    if configured is not None:
        return configured
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent.parent / "shared" / "data" / "moderation"
        if candidate.is_dir():
            return candidate
    return Path("/work/shared/data/moderation")


def split_of(text: str) -> Split:
    """The one deterministic split: validation iff sha256(text)[0] % 5 == 0."""
    return "validation" if hashlib.sha256(text.encode("utf-8")).digest()[0] % 5 == 0 else "train"


def is_validation(text: str) -> bool:
    return split_of(text) == "validation"


@dataclass(frozen=True)
class Example:
    text: str
    # Only annotated categories appear; a missing category means "not annotated", never 0.
    labels: dict[Category, int] = field(default_factory=dict)
    source: str = ""

    @property
    def split(self) -> Split:
        return split_of(self.text)

    @property
    def any_positive(self) -> bool:
        return any(v == 1 for v in self.labels.values())


def load_openai(data_dir: Path | None = None) -> list[Example]:
    """openai-moderation-dev.jsonl: per-category 0/1 under OpenAI short codes."""
    path = (data_dir or default_data_dir()) / OPENAI_FILE
    out: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            labels = {OPENAI_CODES[k]: int(v) for k, v in row.items() if k in OPENAI_CODES}
            out.append(Example(text=row["prompt"], labels=labels, source="openai"))
    return out


_MENTION = re.compile(r"@\w+")
_URL = re.compile(r"https?://\S+")
_RT = re.compile(r"^\s*(!+\s*)*RT\s+")


def clean_tweet(text: str) -> str:
    """Davidson tweets: unescape HTML, drop the RT prefix, anonymise mentions and URLs."""
    text = html.unescape(text)
    text = _URL.sub("http://url", text)
    text = _MENTION.sub("@user", text)
    text = _RT.sub("", text)
    return " ".join(text.split())


def load_davidson(data_dir: Path | None = None) -> list[Example]:
    """davidson-labeled.csv: class 0 hate speech, 1 offensive language, 2 neither.

    Mapped to hate only: class 0 -> hate 1, classes 1 and 2 -> hate 0. (Offensive language is not
    a taxonomy harm by itself; the profanity model covers it.) The split uses the cleaned text.
    """
    path = (data_dir or default_data_dir()) / DAVIDSON_FILE
    out: list[Example] = []
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            text = clean_tweet(row["tweet"])
            cls = int(row["class"])
            out.append(
                Example(text=text, labels={Category.HATE: int(cls == 0)}, source=f"davidson:{cls}")
            )
    return out


def select(examples: Iterable[Example], split: Split) -> list[Example]:
    return [e for e in examples if e.split == split]


def annotated(examples: Iterable[Example], category: Category) -> Iterator[tuple[Example, int]]:
    """(example, label) for the examples annotated for `category`."""
    for e in examples:
        if category in e.labels:
            yield e, e.labels[category]
