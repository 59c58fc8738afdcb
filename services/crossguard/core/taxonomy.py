"""The harm taxonomy: the one place that names categories and maps them to the proto enum.

Names follow OpenAI moderation / MLCommons hazard naming so external labels map cleanly.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from enum import StrEnum

from crossguard.v1 import taxonomy_pb2


class Category(StrEnum):
    SEXUAL = "sexual"
    SEXUAL_MINORS = "sexual/minors"
    HATE = "hate"
    HATE_THREATENING = "hate/threatening"
    HARASSMENT = "harassment"
    HARASSMENT_THREATENING = "harassment/threatening"
    VIOLENCE = "violence"
    VIOLENCE_GRAPHIC = "violence/graphic"
    SELF_HARM = "self-harm"
    SELF_HARM_INTENT = "self-harm/intent"
    SELF_HARM_INSTRUCTIONS = "self-harm/instructions"
    ILLICIT = "illicit"
    ILLICIT_DRUGS = "illicit/drugs"
    ILLICIT_WEAPONS = "illicit/weapons"
    EXTREMISM = "extremism"
    SPAM = "spam"
    SCAM = "scam"
    PROFANITY = "profanity"

    @property
    def proto(self) -> taxonomy_pb2.Category.ValueType:
        return _TO_PROTO[self]

    @classmethod
    def from_proto(cls, value: int) -> Category:
        try:
            return _FROM_PROTO[value]
        except KeyError:
            raise ValueError(f"unknown category enum value {value}") from None

    @classmethod
    def parse(cls, name: str) -> Category:
        """Parse a canonical name ("hate/threatening") or an OpenAI short code ("H2")."""
        if name in OPENAI_CODES:
            return OPENAI_CODES[name]
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(c.value for c in cls)
            raise ValueError(f"unknown category {name!r}; known: {known}") from None


_TO_PROTO: dict[Category, taxonomy_pb2.Category.ValueType] = {
    c: taxonomy_pb2.Category.Value("CATEGORY_" + c.name) for c in Category
}
_FROM_PROTO: dict[int, Category] = {int(v): c for c, v in _TO_PROTO.items()}

# Short label codes used by the OpenAI moderation release (shared/data/moderation).
OPENAI_CODES: dict[str, Category] = {
    "S": Category.SEXUAL,
    "S3": Category.SEXUAL_MINORS,
    "H": Category.HATE,
    "H2": Category.HATE_THREATENING,
    "HR": Category.HARASSMENT,
    "SH": Category.SELF_HARM,
    "V": Category.VIOLENCE,
    "V2": Category.VIOLENCE_GRAPHIC,
}

# Sub-categories imply their parent: a high "hate/threatening" score is also hate.
PARENT: dict[Category, Category] = {
    Category.SEXUAL_MINORS: Category.SEXUAL,
    Category.HATE_THREATENING: Category.HATE,
    Category.HARASSMENT_THREATENING: Category.HARASSMENT,
    Category.VIOLENCE_GRAPHIC: Category.VIOLENCE,
    Category.SELF_HARM_INTENT: Category.SELF_HARM,
    Category.SELF_HARM_INSTRUCTIONS: Category.SELF_HARM,
    Category.ILLICIT_DRUGS: Category.ILLICIT,
    Category.ILLICIT_WEAPONS: Category.ILLICIT,
}

# Severity 0 none, 1 low, 2 medium, 3 high, from a calibrated score. Policies may override.
DEFAULT_SEVERITY_CUTS: tuple[float, float, float] = (0.3, 0.6, 0.85)


def severity(score: float, cuts: tuple[float, float, float] = DEFAULT_SEVERITY_CUTS) -> int:
    """Map a score in [0, 1] to a severity 0..3: the number of cuts (increasing) at or below
    it; NaN is 0."""
    if score != score:  # NaN: bisect would place it above every cut
        return 0
    return bisect.bisect_right(cuts, score)


def parse_all(names: Iterable[str]) -> list[Category]:
    return [Category.parse(n) for n in names]
