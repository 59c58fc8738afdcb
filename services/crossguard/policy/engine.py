"""decide(): a pure function from policy + item + classifier results + missing signals to a
domain Decision. No I/O, no clocks, no randomness: the same inputs give the same decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from crossguard.core.results import ClassifierResult, Modality, Score, max_scores
from crossguard.core.taxonomy import Category, severity
from crossguard.policy.model import Policy


class Action(StrEnum):
    ALLOW = "allow"
    ESCALATE = "escalate"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Action.ALLOW: 0, Action.ESCALATE: 1, Action.BLOCK: 2}


class ItemLike(Protocol):
    """What the policy needs from an item (a ContentItem proto qualifies)."""

    @property
    def tenant(self) -> str: ...

    @property
    def surface(self) -> str: ...


@dataclass(frozen=True)
class MissingSignal:
    """A modality whose signal the decision lacks. `fallback` is filled in by decide()."""

    modality: Modality
    reason: str  # "unavailable", "deadline_exceeded", "invalid_input", "not_configured", ...
    fallback: str = ""
    detail: str = ""


@dataclass(frozen=True)
class RuleHit:
    """One policy rule that fired. `rule` is a stable name, e.g. "threshold.block:hate"."""

    rule: str
    action: Action
    reason: str
    severity: int = 0
    score: float = 0.0
    category: Category | None = None
    modality: Modality | None = None


@dataclass(frozen=True)
class Escalation:
    escalated: bool = False
    rule: str = ""
    priority: float = 0.0
    required_verdicts: int = 0


@dataclass(frozen=True)
class Decision:
    action: Action
    categories: list[Score]
    reasons: list[str]
    missing: list[MissingSignal]
    policy_version: str
    escalation: Escalation
    hits: list[RuleHit] = field(default_factory=list)

    @property
    def max_severity(self) -> int:
        return max((s.severity for s in self.categories), default=0)


def decide(
    policy: Policy,
    item: ItemLike,
    results: Sequence[ClassifierResult],
    missing: Sequence[MissingSignal],
    *,
    fused: Sequence[Score] | None = None,
) -> Decision:
    """Apply `policy` to the fused scores (max fusion over `results` when `fused` is None)
    and to the missing signals, for the item's tenant and surface."""
    tenant, surface = item.tenant, item.surface
    scores = (
        list(fused) if fused is not None else max_scores(results)
    )  # no consistency service: pass-through
    cuts = policy.severity_cuts
    categories = sorted(
        (Score(s.category, float(s.score), severity(float(s.score), cuts)) for s in scores),
        key=lambda s: (-s.score, s.category.value),
    )

    hits: list[RuleHit] = []
    for s in categories:
        th = policy.thresholds(s.category, tenant, surface)
        # Block wins over escalate: the first threshold the score reaches fires.
        for action, threshold in ((Action.BLOCK, th.block), (Action.ESCALATE, th.escalate)):
            if threshold is None or s.score < threshold:
                continue
            name = action.value
            hits.append(
                RuleHit(
                    rule=f"threshold.{name}:{s.category.value}",
                    action=action,
                    reason=f"{s.category.value} score {s.score:.2f} >= {name} threshold "
                    f"{threshold:.2f}",
                    severity=s.severity,
                    score=s.score,
                    category=s.category,
                )
            )
            break

    resolved_missing: list[MissingSignal] = []
    for m in sorted(missing, key=lambda m: m.modality.value):
        fallback = policy.signal(m.modality, tenant, surface).fallback
        resolved_missing.append(MissingSignal(m.modality, m.reason, fallback, m.detail))
        hits.append(
            RuleHit(
                rule=f"missing_signal.{fallback}:{m.modality.value}",
                action=Action(fallback),
                reason=f"{m.modality.value} signal missing ({m.reason}): fallback {fallback}",
                modality=m.modality,
            )
        )

    action = max((h.action for h in hits), key=lambda a: a.rank, default=Action.ALLOW)
    max_sev = max((s.severity for s in categories), default=0)
    esc_policy = policy.escalation

    trigger: RuleHit | None = None
    if action is Action.ESCALATE:
        trigger = _strongest([h for h in hits if h.action is Action.ESCALATE])
    elif action is Action.BLOCK and esc_policy.review_blocks_at_severity is not None:
        severe = [
            h
            for h in hits
            if h.action is Action.BLOCK and h.severity >= esc_policy.review_blocks_at_severity
        ]
        if severe:
            trigger = _strongest(severe)
            trigger = RuleHit(
                rule=f"severe_block_review:{trigger.category.value if trigger.category else ''}",
                action=Action.BLOCK,
                reason=f"high-severity block ({trigger.reason}) needs human confirmation",
                severity=trigger.severity,
                score=trigger.score,
                category=trigger.category,
            )
            hits.append(trigger)

    escalation = Escalation()
    if trigger is not None:
        required = (
            esc_policy.high_severity_required_verdicts
            if max_sev >= esc_policy.high_severity
            else esc_policy.required_verdicts
        )
        escalation = Escalation(
            escalated=True,
            rule=trigger.rule,
            priority=_priority(trigger, max_sev),
            required_verdicts=required,
        )

    reasons = [h.reason for h in hits] or ["no category reached a policy threshold"]
    return Decision(
        action=action,
        categories=categories,
        reasons=reasons,
        missing=resolved_missing,
        policy_version=policy.version,
        escalation=escalation,
        hits=hits,
    )


def _strongest(hits: Sequence[RuleHit]) -> RuleHit:
    # Highest severity, then highest score; category hits before missing-signal hits.
    return max(hits, key=lambda h: (h.severity, h.score, h.category is not None))


def _priority(trigger: RuleHit, max_severity: int) -> float:
    """Review priority in [0, 1]: severity first, then how strong the signal was. A missing
    signal (nothing known) ranks as medium."""
    if trigger.category is None:
        return round(max(0.5, max_severity / 3.0), 4)
    return round(min(1.0, (max_severity + trigger.score) / 4.0), 4)
