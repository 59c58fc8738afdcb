"""The policy file schema (pydantic), validated on load (docs/policy.md is the reference).

A policy maps fused per-category scores, consistency signals, hash matches and missing signals
to actions:

- ``defaults`` / ``categories``: thresholds ``{age_restrict, limit_visibility, escalate,
  block}``; every threshold a score reaches fires and the strongest action wins. ``null``
  disables that action for the category. A category may also set its own ``severity_cuts``.
- ``overrides``: per tenant and/or surface; their thresholds, signal settings and ``hold``
  win over the base policy. Category-specific thresholds always beat layer defaults, so an
  override's ``defaults`` never loosens a stricter per-category rule of the base policy.
- ``signals``: per modality (``default`` for the rest): what to do when the signal is missing
  (``fallback``, or per missing reason in ``on_reason``, e.g. ``unsupported_language``),
  bounded ``retries`` and the per-call ``deadline_ms``.
- ``severity_cuts``: scores at which severity becomes 1, 2, 3.
- ``escalation``: reviewers needed, whether high-severity blocks also go to review, the
  uncertainty band, inconsistency rules and what is enforced while review is pending (``hold``).
- ``hash_matches``: a known-bad hash match (vision's hash banks) blocks, per bank.
- ``statement_of_reasons``: restriction per action, ground per category, territorial scope and
  redress, for the DSA Art. 17 statement every non-allow decision carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal, TypeVar, cast

from pydantic import Field, PrivateAttr, field_validator, model_validator

from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category
from crossguard.policy.schema_base import Strict, parse_category_keys
from crossguard.policy.sor_schema import SorPolicy

# Every action a rule can take, weakest first.
ActionName = Literal["allow", "age_restrict", "limit_visibility", "escalate", "block"]
Fallback = ActionName
# What may be enforced while an escalated item waits for review.
Hold = Literal["allow", "age_restrict", "limit_visibility", "block"]
THRESHOLD_FIELDS: tuple[str, ...] = ("age_restrict", "limit_visibility", "escalate", "block")
SeverityCuts = tuple[float, float, float]

_MAX_RESOLVED = 4096
T = TypeVar("T")

# Kept for callers that imported the private name.
_Strict = Strict


def _check_cuts(cuts: SeverityCuts | None) -> SeverityCuts | None:
    if cuts is not None and not (0.0 < cuts[0] <= cuts[1] <= cuts[2] <= 1.0):
        raise ValueError("severity_cuts must be increasing values in (0, 1]")
    return cuts


class Thresholds(Strict):
    """Score thresholds in [0, 1]; a field left out inherits, an explicit null disables."""

    age_restrict: float | None = Field(default=None, ge=0.0, le=1.0)
    limit_visibility: float | None = Field(default=None, ge=0.0, le=1.0)
    escalate: float | None = Field(default=None, ge=0.0, le=1.0)
    block: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.block is None:
            return self
        for name in ("age_restrict", "limit_visibility", "escalate"):
            value = getattr(self, name)
            if value is not None and value > self.block:
                raise ValueError(f"{name} ({value}) must be <= block ({self.block})")
        return self


class CategoryRule(Thresholds):
    """A category's thresholds, and optionally its own severity cuts."""

    severity_cuts: SeverityCuts | None = None

    _cuts = field_validator("severity_cuts")(_check_cuts)


class SignalPolicy(Strict):
    """Handling of one modality's signal; fields left out inherit from ``default``."""

    fallback: Fallback | None = None
    # Fallback by missing reason ("unsupported_language", "deadline_exceeded", ...); wins over
    # `fallback`.
    on_reason: dict[str, Fallback] = Field(default_factory=dict)
    # gRPC caps a call at 5 attempts, so at most 4 retries.
    retries: int | None = Field(default=None, ge=0, le=4)
    deadline_ms: int | None = Field(default=None, ge=10, le=600_000)


class ResolvedSignal(Strict):
    fallback: Fallback
    retries: int
    deadline_ms: int
    on_reason: dict[str, Fallback] = Field(default_factory=dict)

    def fallback_for(self, reason: str) -> Fallback:
        return self.on_reason.get(reason, self.fallback)


# `default`, or a modality (kept in step with core.results.Modality by a unit test).
SignalKey = Literal["default", "text", "image", "audio"]


class Match(Strict):
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


class Override(Strict):
    name: str = Field(min_length=1)
    match: Match
    defaults: Thresholds = Thresholds()
    categories: dict[Category, CategoryRule] = Field(default_factory=dict)
    signals: dict[SignalKey, SignalPolicy] = Field(default_factory=dict)
    # What an escalated item gets while review is pending, on this tenant/surface.
    hold: Hold | None = None
    # A tenant's own terms, grounds, scope and redress (replaces the base section whole).
    statement_of_reasons: SorPolicy | None = None

    _cats = field_validator("categories", mode="before")(parse_category_keys)


class UncertaintyRule(Strict):
    """Escalate instead of deciding automatically when the scores are not conclusive."""

    # A score within `band` below a block (or limit/age) threshold escalates: near the line.
    band: float = Field(default=0.0, ge=0.0, le=0.5)
    # A fused uncertainty estimate at or above this escalates (null: ignore the estimate)...
    max_uncertainty: float | None = Field(default=None, gt=0.0, le=1.0)
    # ... for categories scoring at least this.
    min_score: float = Field(default=0.2, ge=0.0, le=1.0)


class InconsistencyRule(Strict):
    """A consistency signal (name or glob, e.g. "*_disagreement") at or above `at_least`, or
    at or below `at_most` (exactly one of the two): agreement signals such as
    `image_caption_agreement` are alarming when LOW."""

    signal: str = Field(min_length=1)
    at_least: float | None = Field(default=None, ge=0.0, le=1.0)
    at_most: float | None = Field(default=None, ge=0.0, le=1.0)
    action: Literal["age_restrict", "limit_visibility", "escalate", "block"] = "escalate"
    # The category the SoR cites for this rule (none: the top-scoring category).
    category: Category | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: object) -> object:
        return Category.parse(str(value)) if value is not None else None

    @model_validator(mode="after")
    def _one_bound(self) -> InconsistencyRule:
        if (self.at_least is None) == (self.at_most is None):
            raise ValueError("give exactly one of at_least and at_most")
        return self

    def matches(self, name: str) -> bool:
        return fnmatchcase(name, self.signal)

    def fires(self, name: str, value: float) -> bool:
        """The signal `name` with `value` meets this rule."""
        if not self.matches(name):
            return False
        if self.at_least is not None:
            return value >= self.at_least
        return self.at_most is not None and value <= self.at_most

    def bound(self) -> str:
        """The rule's bound as a reason reads it, e.g. ">= 0.60"."""
        if self.at_least is not None:
            return f">= {self.at_least:.2f}"
        return f"<= {self.at_most:.2f}"


class EscalationPolicy(Strict):
    high_severity: int = Field(default=3, ge=1, le=3)
    required_verdicts: int = Field(default=1, ge=1, le=5)
    high_severity_required_verdicts: int = Field(default=2, ge=1, le=5)
    # Blocks at or above this severity also go to human review (null: never).
    review_blocks_at_severity: int | None = Field(default=3, ge=1, le=3)
    sla_minutes: int = Field(default=24 * 60, ge=1)
    # Enforced while review is pending when no restricting rule fired.
    hold: Hold = "allow"
    uncertainty: UncertaintyRule = UncertaintyRule()
    inconsistency: list[InconsistencyRule] = Field(default_factory=list)


class HashBank(Strict):
    action: Literal["escalate", "block"] | None = None
    category: Category | None = None
    # Also send the (blocked) item to review.
    review: bool | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _category(cls, value: object) -> object:
        return Category.parse(str(value)) if value is not None else None


class HashMatchPolicy(Strict):
    """A match against a known-bad hash bank: the bank's action (default block), severity 3."""

    action: Literal["escalate", "block"] = "block"
    review: bool = False
    banks: dict[str, HashBank] = Field(default_factory=dict)

    def for_bank(self, bank: str) -> tuple[str, Category | None, bool]:
        b = self.banks.get(bank)
        if b is None:
            return self.action, None, self.review
        return (
            b.action or self.action,
            b.category,
            self.review if b.review is None else b.review,
        )


BUILTIN_THRESHOLDS = Thresholds(escalate=0.5, block=0.9)
DEFAULT_SIGNAL = SignalPolicy(fallback="escalate", retries=2, deadline_ms=3000)


def _default_signals() -> dict[SignalKey, SignalPolicy]:
    return {"default": DEFAULT_SIGNAL}


class Policy(Strict):
    version: str = Field(min_length=1, description="Named by every decision.")
    description: str = ""
    defaults: Thresholds = BUILTIN_THRESHOLDS
    categories: dict[Category, CategoryRule] = Field(default_factory=dict)
    severity_cuts: SeverityCuts = (0.3, 0.6, 0.85)
    signals: dict[SignalKey, SignalPolicy] = Field(default_factory=_default_signals)
    escalation: EscalationPolicy = EscalationPolicy()
    hash_matches: HashMatchPolicy = HashMatchPolicy()
    statement_of_reasons: SorPolicy = SorPolicy()
    overrides: list[Override] = Field(default_factory=list)
    # Resolutions by their arguments: the policy is immutable and the engine asks the same
    # questions for every item.
    _resolved: dict[tuple[object, ...], object] = PrivateAttr(default_factory=dict)

    _cats = field_validator("categories", mode="before")(parse_category_keys)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_string(cls, value: object) -> object:
        # YAML reads `version: 1.0` as a float; require the author to quote it.
        if not isinstance(value, str):
            raise ValueError("version must be a string (quote it in YAML)")
        return value

    @field_validator("severity_cuts")
    @classmethod
    def _cuts_ordered(cls, cuts: SeverityCuts) -> SeverityCuts:
        _check_cuts(cuts)
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
        specific: list[Thresholds | None] = [o.categories.get(category) for o in reversed(layers)]
        specific.append(self.categories.get(category))
        general = [o.defaults for o in reversed(layers)] + [self.defaults, BUILTIN_THRESHOLDS]
        result: dict[str, float | None] = {}
        for field in THRESHOLD_FIELDS:
            for candidate in [*specific, *general]:
                if candidate is not None and field in candidate.model_fields_set:
                    result[field] = getattr(candidate, field)
                    break
            else:
                result[field] = None
        return Thresholds.model_construct(**result)  # type: ignore[arg-type]

    def category_cuts(
        self, category: Category, tenant: str = "", surface: str = ""
    ) -> SeverityCuts:
        """Severity cuts for a category: its own (most specific layer first), else the policy's."""
        return self._memo(
            ("cuts", category, tenant, surface),
            lambda: self._category_cuts(category, tenant, surface),
        )

    def _category_cuts(self, category: Category, tenant: str, surface: str) -> SeverityCuts:
        for o in reversed(self.layers(tenant, surface)):
            rule = o.categories.get(category)
            if rule is not None and rule.severity_cuts is not None:
                return rule.severity_cuts
        rule = self.categories.get(category)
        if rule is not None and rule.severity_cuts is not None:
            return rule.severity_cuts
        return self.severity_cuts

    def hold(self, tenant: str = "", surface: str = "") -> Hold:
        """What an escalated item gets while review is pending."""
        for o in reversed(self.layers(tenant, surface)):
            if o.hold is not None:
                return o.hold
        return self.escalation.hold

    def sor(self, tenant: str = "", surface: str = "") -> SorPolicy:
        """The statement-of-reasons section in force: the most specific override's, else the
        base policy's."""
        for o in reversed(self.layers(tenant, surface)):
            if o.statement_of_reasons is not None:
                return o.statement_of_reasons
        return self.statement_of_reasons

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
        resolved = self._resolved  # a pydantic private attribute: one lookup, not three
        try:
            return cast(T, resolved[key])
        except KeyError:
            pass
        # Tenants and surfaces come from the items: bound the memo so they cannot grow it.
        if len(resolved) >= _MAX_RESOLVED:
            resolved.clear()
        value = resolved[key] = compute()
        return value

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
        on_reason: dict[str, str] = {}
        for candidate in reversed(chain):  # least specific first; the more specific overwrite
            if candidate is not None:
                on_reason.update(candidate.on_reason)
        values["on_reason"] = on_reason
        return ResolvedSignal.model_validate(values)
