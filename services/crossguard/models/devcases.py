"""Contrastive development cases written for Crossguard (devcases/contrastive.jsonl).

Each case: `family` (counter_speech, negation, idiom, self_harm_support, reclaimed,
profanity_untargeted, identity_benign, identity_hate, obf_spaced, obf_leet, obf_symbols,
obf_homoglyph, obf_zero_width, obf_emoji, non_english), `label` (1 = should be flagged, 0 = should
not), `category` (the category a flagged case belongs to, or the one a benign case is mistaken
for), `split` ("train": may be used to fit the heads; "dev": never trained on), `group` (identity
group, for the bias table), `lang`.

Kept out of training entirely: the reclaimed-term, obfuscation and non-English families and
three identity groups (jews, asian_people, disabled_people); the other families are split by
template, so dev cases are phrasings the heads never saw. Identity cases are expanded from
templates over 11 groups; the rest are written one by one.

Added in session 8 (ids 447 onwards; the unseen-group check): 40 more groups with short,
caption-like benign mentions ("<group> at the farmers market") and hateful ones ("<group> are
parasites, every single one"), 6 + 4 templates, all in the train split; and 40 OTHER groups with
other templates (5 benign, 3 hateful), all in the dev split: groups and phrasings the heads never
saw, written after a probe found short neutral captions naming groups outside the 11 flagged at
about one in two ("Sudanese families at the community centre": hate 0.68).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from crossguard.core.taxonomy import Category

DevSplit = Literal["train", "dev"]
FILE = "contrastive.jsonl"


@dataclass(frozen=True)
class DevCase:
    id: str
    family: str
    text: str
    label: int
    category: Category
    split: DevSplit
    group: str = ""
    lang: str = "en"

    def label_for(self, category: Category) -> int | None:
        """Training label for one head: benign cases are 0 for every category, harmful cases
        1 for their own category and not annotated (None) for the others."""
        if self.label == 0:
            return 0
        return 1 if category == self.category else None


def load_devcases() -> list[DevCase]:
    text = resources.files("crossguard.models").joinpath("devcases", FILE).read_text("utf-8")
    out: list[DevCase] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        out.append(
            DevCase(
                id=row["id"],
                family=row["family"],
                text=row["text"],
                label=int(row["label"]),
                category=Category(row["category"]),
                split=row["split"],
                group=row.get("group", ""),
                lang=row.get("lang", "en"),
            )
        )
    return out
