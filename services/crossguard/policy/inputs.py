"""What the policy decides on besides the fused scores and missing signals: consistency signals,
known-bad hash matches (beyond those in the results' evidence), per-category uncertainty of the
fusion, and the item's modalities.

The consistency service and the vision hash banks fill these in as they land; the policy works
with whatever subset it is given (empty: the rules that need them do not fire)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category


@dataclass(frozen=True)
class ConsistencySignal:
    """A cross-modal signal, e.g. caption vs OCR disagreement; `value` in [0, 1]."""

    name: str
    value: float
    modalities: tuple[Modality, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class HashMatch:
    """A part matched a known-bad hash bank. decide() also takes these from the results'
    hash-match evidence."""

    bank: str
    modality: Modality
    part_id: str = ""
    category: Category | None = None
    entry_id: str = ""
    distance: int = 0


@dataclass(frozen=True)
class PolicyContext:
    consistency: Sequence[ConsistencySignal] = ()
    hash_matches: Sequence[HashMatch] = ()
    # Fusion's uncertainty per category in [0, 1] (0: certain); absent: unknown.
    uncertainty: Mapping[Category, float] = field(default_factory=dict)
    # Modalities present in the item; empty: those of the results and missing signals.
    modalities: Sequence[Modality] = ()
    locale: str = ""


EMPTY_CONTEXT = PolicyContext()
