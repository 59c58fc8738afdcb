"""The policy file schema (pydantic), validated on load.

A policy maps fused per-category scores to actions:

- ``defaults`` / ``categories``: thresholds ``{escalate, block}``; a score >= block blocks,
  >= escalate escalates. ``null`` disables that action for the category.
- ``overrides``: per tenant and/or surface; their thresholds and signal settings win over the
  base policy. Category-specific thresholds always beat layer defaults, so an override's
  ``defaults`` never loosens a stricter per-category rule of the base policy.
- ``signals``: per modality (``default`` for the rest): what to do when the signal is missing
  (``fallback``: escalate | allow | block), bounded ``retries`` and the per-call ``deadline_ms``.
- ``severity_cuts``: scores at which severity becomes 1, 2, 3.
- ``escalation``: reviewers needed, and whether high-severity blocks also go to review.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category

Fallback = Literal["escalate", "allow", "block"]


_MAX_RESOLVED = 4096
T = TypeVar("T")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Strict):
    """Score thresholds in [0, 1]; a field left out inherits, an explicit null disables."""

    escalate: float | None = Field(default=None, ge=0.0, le=1.0)
    block: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.escalate is not None and self.block is not None and self.escalate > self.block:
            raise ValueError(f"escalate ({self.escalate}) must be <= block ({self.block})")
        return self


class SignalPolicy(_Strict):
    """Handling of one modality's signal; fields left out inherit from ``default``."""

    fallback: Fallback | None = None
    # gRPC caps a call at 5 attempts, so at most 4 retries.
    retries: int | None = Field(default=None, ge=0, le=4)
    deadline_ms: int | None = Field(default=None, ge=10, le=600_000)


class ResolvedSignal(_Strict):
    fallback: Fallback
    retries: int
    deadline_ms: int


def _parse_categories(value: object) -> object:
    if not isinstance(value, dict):
        return value
    out: dict[Category, object] = {}
    for key, thresholds in value.items():
        out[Category.parse(str(key))] = thresholds
    return out


def _parse_signals(value: object) -> object:
    if not isinstance(value, dict):
        return value
    known = {"default", *(m.value for m in Modality)}
    for key in value:
        if key not in known:
            raise ValueError(f"unknown signal {key!r}; known: {', '.join(sorted(known))}")
    return value


class Match(_Strict):
    tenant: str | None = None
    surface: str | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> Match:
        if self.tenant is None and self.surface is None:
            raise ValueError("match needs tenant and/or surface")
        return self

    def matches(self, tenant: str, surface: str) -> bool:
        return (self.tenant is None or self.tenant == tenant) and (
            self.surface is None or self.surface == surface
        )

    @property
    def specificity(self) -> int:
        return int(self.tenant is not None) + int(self.surface is not None)


class Override(_Strict):
    name: str = Field(min_length=1)
    match: Match
    defaults: Thresholds = Thresholds()
    categories: dict[Category, Thresholds] = Field(default_factory=dict)
    signals: dict[str, SignalPolicy] = Field(default_factory=dict)

    _cats = field_validator("categories", mode="before")(_parse_categories)
    _sigs = field_validator("signals", mode="before")(_parse_signals)


class EscalationPolicy(_Strict):
    high_severity: int = Field(default=3, ge=1, le=3)
    required_verdicts: int = Field(default=1, ge=1, le=5)
    high_severity_required_verdicts: int = Field(default=2, ge=1, le=5)
    # Blocks at or above this severity also go to human review (null: never).
    review_blocks_at_severity: int | None = Field(default=3, ge=1, le=3)
    sla_minutes: int = Field(default=24 * 60, ge=1)


BUILTIN_THRESHOLDS = Thresholds(escalate=0.5, block=0.9)
DEFAULT_SIGNAL = SignalPolicy(fallback="escalate", retries=2, deadline_ms=3000)


class Policy(_Strict):
    version: str = Field(min_length=1, description="Named by every decision.")
    description: str = ""
    defaults: Thresholds = BUILTIN_THRESHOLDS
    categories: dict[Category, Thresholds] = Field(default_factory=dict)
    severity_cuts: tuple[float, float, float] = (0.3, 0.6, 0.85)
    signals: dict[str, SignalPolicy] = Field(default_factory=lambda: {"default": DEFAULT_SIGNAL})
    escalation: EscalationPolicy = EscalationPolicy()
    overrides: list[Override] = Field(default_factory=list)
    # Resolutions by their arguments: the policy is immutable and the engine asks the same
    # questions for every item.
    _resolved: dict[tuple[object, ...], object] = PrivateAttr(default_factory=dict)

    _cats = field_validator("categories", mode="before")(_parse_categories)
    _sigs = field_validator("signals", mode="before")(_parse_signals)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_string(cls, value: object) -> object:
        # YAML reads `version: 1.0` as a float; require the author to quote it.
        if not isinstance(value, str):
            raise ValueError("version must be a string (quote it in YAML)")
        return value

    @field_validator("severity_cuts")
    @classmethod
    def _cuts_ordered(cls, cuts: tuple[float, float, float]) -> tuple[float, float, float]:
        if not (0.0 < cuts[0] <= cuts[1] <= cuts[2] <= 1.0):
            raise ValueError("severity_cuts must be increasing values in (0, 1]")
        return cuts

    @model_validator(mode="after")
    def _unique_override_names(self) -> Policy:
        names = [o.name for o in self.overrides]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate override names: {', '.join(dupes)}")
        return self

    # -- resolution ----------------------------------------------------------------------

    def layers(self, tenant: str, surface: str) -> list[Override]:
        """Matching overrides, least to most specific (file order breaks ties)."""
        hits = [o for o in self.overrides if o.match.matches(tenant, surface)]
        return sorted(hits, key=lambda o: o.match.specificity)

    def thresholds(self, category: Category, tenant: str = "", surface: str = "") -> Thresholds:
        """Effective thresholds: the most specific layer that sets a field wins, and any
        category-specific setting beats every layer's defaults."""
        return self._memo(
            ("thresholds", category, tenant, surface),
            lambda: self._thresholds(category, tenant, surface),
        )

    def _thresholds(self, category: Category, tenant: str, surface: str) -> Thresholds:
        layers = self.layers(tenant, surface)
        specific = [o.categories.get(category) for o in reversed(layers)]
        specific.append(self.categories.get(category))
        general = [o.defaults for o in reversed(layers)] + [self.defaults, BUILTIN_THRESHOLDS]
        result: dict[str, float | None] = {}
        for field in ("escalate", "block"):
            for candidate in [*specific, *general]:
                if candidate is not None and field in candidate.model_fields_set:
                    result[field] = getattr(candidate, field)
                    break
            else:
                result[field] = None
        return Thresholds.model_construct(**result)  # type: ignore[arg-type]

    def signal(self, modality: Modality, tenant: str = "", surface: str = "") -> ResolvedSignal:
        """Effective missing-signal handling, retries and deadline for one modality."""
        return self._memo(
            ("signal", modality, tenant, surface),
            lambda: self._signal(modality, tenant, surface),
        )

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        """A copy (with `update` applied) that resolves afresh: the memo belongs to the values
        it was computed from."""
        copied = super().model_copy(update=update, deep=deep)
        copied._resolved = {}
        return copied

    def _memo(self, key: tuple[object, ...], compute: Callable[[], T]) -> T:
        """compute()'s result, remembered under `key` (which names what is computed, so the
        value stored under it is always a T)."""
        if key not in self._resolved:
            # Tenants and surfaces come from the items: bound the memo so they cannot grow it.
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()
            self._resolved[key] = compute()
        return cast(T, self._resolved[key])

    def _signal(self, modality: Modality, tenant: str, surface: str) -> ResolvedSignal:
        layers = self.layers(tenant, surface)
        chain: list[SignalPolicy | None] = []
        for o in reversed(layers):
            chain += [o.signals.get(modality.value), o.signals.get("default")]
        chain += [self.signals.get(modality.value), self.signals.get("default"), DEFAULT_SIGNAL]
        values: dict[str, object] = {}
        for field in ("fallback", "retries", "deadline_ms"):
            for candidate in chain:
                if candidate is not None and getattr(candidate, field) is not None:
                    values[field] = getattr(candidate, field)
                    break
        return ResolvedSignal.model_validate(values)
