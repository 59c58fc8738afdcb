"""What the policy decides on besides the fused scores and missing signals: consistency signals,
known-bad hash matches, per-category uncertainty of the fusion, and the item's modalities.

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
    """A part matched a known-bad hash bank."""

    bank: str
    modality: Modality
    part_id: str = ""
    category: Category | None = None


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
