"""decide(): a pure function from policy + item + classifier results + missing signals (+ the
optional context: consistency signals, hash matches, fusion uncertainty) to a domain Decision.
No I/O, no clocks, no randomness: the same inputs give the same decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from crossguard.core.results import (
    ClassifierResult,
    HashMatchEvidence,
    Modality,
    Score,
    max_scores,
)
from crossguard.core.taxonomy import Category, severity
from crossguard.policy.inputs import EMPTY_CONTEXT, HashMatch, PolicyContext
from crossguard.policy.model import THRESHOLD_FIELDS, Policy
from crossguard.policy.sor import AUTOMATED_FULLY, StatementOfReasons, build_statement


class Action(StrEnum):
    """Weakest first; the strongest action of the rules that fire is the decision's."""

    ALLOW = "allow"
    AGE_RESTRICT = "age_restrict"
    LIMIT_VISIBILITY = "limit_visibility"
    ESCALATE = "escalate"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def restricts(self) -> bool:
        """Applies a restriction by itself (escalation only asks for review)."""
        return self not in (Action.ALLOW, Action.ESCALATE)


_RANK = {a: i for i, a in enumerate(Action)}


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
    # "unavailable", "deadline_exceeded", "invalid_input", "not_configured",
    # "unsupported_language", ...
    reason: str
    fallback: str = ""
    detail: str = ""


@dataclass(frozen=True)
class RuleHit:
    """One policy rule that fired. `rule` is a stable name, e.g. "threshold.block:hate",
    "uncertainty.band:hate", "inconsistency.escalate:caption_ocr_disagreement",
    "hash_match.block:csam", "missing_signal.escalate:image"."""

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
    # Enforced now: `action`, except for an escalation, where it is the interim restriction
    # until review (ALLOW: the item stays up meanwhile).
    applied: Action = Action.ALLOW
    # For every decision other than allow.
    statement: StatementOfReasons | None = None
    context: PolicyContext = EMPTY_CONTEXT
    severity: int = 0
    # Modalities of the item (the context's, else those of the results and missing signals).
    modalities: list[Modality] = field(default_factory=list)
    # Every hash match decided on (the context's and the results' evidence).
    hash_matches: list[HashMatch] = field(default_factory=list)

    @property
    def max_severity(self) -> int:
        return max(self.severity, max((s.severity for s in self.categories), default=0))


def decide(
    policy: Policy,
    item: ItemLike,
    results: Sequence[ClassifierResult],
    missing: Sequence[MissingSignal],
    *,
    fused: Sequence[Score] | None = None,
    context: PolicyContext | None = None,
) -> Decision:
    """Apply `policy` to the fused scores (max fusion over `results` when `fused` is None),
    the missing signals and the `context` (consistency signals, hash matches, uncertainty),
    for the item's tenant and surface."""
    ctx = context or EMPTY_CONTEXT
    tenant, surface = item.tenant, item.surface
    scores = (
        list(fused) if fused is not None else max_scores(results)
    )  # no consistency service: pass-through
    categories = sorted(
        (
            Score(
                s.category,
                float(s.score),
                severity(float(s.score), policy.category_cuts(s.category, tenant, surface)),
            )
            for s in scores
        ),
        key=lambda s: (-s.score, s.category.value),
    )

    hits: list[RuleHit] = []
    for s in categories:
        hits += _category_hits(policy, s, tenant, surface, ctx)
    matches = _hash_matches(results, ctx)
    hits += _hash_hits(policy, matches)
    hits += _inconsistency_hits(policy, ctx, categories)

    resolved_missing: list[MissingSignal] = []
    for m in sorted(missing, key=lambda m: m.modality.value):
        fallback = policy.signal(m.modality, tenant, surface).fallback_for(m.reason)
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
    max_sev = max([s.severity for s in categories] + [h.severity for h in hits], default=0)
    trigger = _escalation_trigger(policy, action, hits)
    if trigger is not None and trigger not in hits:
        hits.append(trigger)

    escalation = Escalation()
    if trigger is not None:
        esc_policy = policy.escalation
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

    applied = action
    if action is Action.ESCALATE:
        # The strongest restriction that fired, or the surface's hold, while review is pending.
        candidates = [h.action for h in hits if h.action.restricts]
        candidates.append(Action(policy.hold(tenant, surface)))
        applied = max(candidates, key=lambda a: a.rank)

    reasons = [h.reason for h in hits] or ["no category reached a policy threshold"]
    modalities = list(ctx.modalities) or sorted(
        {r.modality for r in results} | {m.modality for m in missing}, key=lambda m: m.value
    )
    statement = None
    if action is not Action.ALLOW:
        statement = _statement(policy, item, applied, hits, results, modalities, trigger)
    return Decision(
        action=action,
        categories=categories,
        reasons=reasons,
        missing=resolved_missing,
        policy_version=policy.version,
        escalation=escalation,
        hits=hits,
        applied=applied,
        statement=statement,
        context=ctx,
        severity=max_sev,
        modalities=modalities,
        hash_matches=matches,
    )


def _category_hits(
    policy: Policy, s: Score, tenant: str, surface: str, ctx: PolicyContext
) -> list[RuleHit]:
    th = policy.thresholds(s.category, tenant, surface)
    fired = [
        (Action(name), value)
        for name in THRESHOLD_FIELDS
        if (value := getattr(th, name)) is not None and s.score >= value
    ]
    fired.sort(key=lambda f: f[0].rank, reverse=True)
    out: list[RuleHit] = []
    # The strongest threshold reached; under an escalation also the strongest restriction
    # reached, which is enforced while review is pending.
    shown = fired[:1]
    if fired and fired[0][0] is Action.ESCALATE:
        shown += [f for f in fired[1:] if f[0].restricts][:1]
    for action, threshold in shown:
        out.append(
            _score_hit(
                f"threshold.{action.value}",
                action,
                s,
                f"{s.category.value} score {s.score:.2f} >= {action.value} threshold "
                f"{threshold:.2f}",
            )
        )
    strongest = fired[0][0] if fired else Action.ALLOW
    rule = policy.escalation.uncertainty
    if (
        strongest is not Action.BLOCK
        and rule.band > 0
        and th.block is not None
        and th.block - rule.band <= s.score
    ):
        out.append(
            _score_hit(
                "uncertainty.band",
                Action.ESCALATE,
                s,
                f"{s.category.value} score {s.score:.2f} within {rule.band:.2f} of the block "
                f"threshold {th.block:.2f}: a person decides",
            )
        )
    u = ctx.uncertainty.get(s.category)
    if (
        u is not None
        and rule.max_uncertainty is not None
        and u >= rule.max_uncertainty
        and s.score >= rule.min_score
        and strongest is not Action.ESCALATE
        # A category the policy sets no threshold for (e.g. profanity) is only reported.
        and any(
            t is not None for t in (th.age_restrict, th.limit_visibility, th.escalate, th.block)
        )
    ):
        out.append(
            _score_hit(
                "uncertainty.estimate",
                Action.ESCALATE,
                s,
                f"{s.category.value} score {s.score:.2f} is uncertain ({u:.2f} >= "
                f"{rule.max_uncertainty:.2f}): a person decides",
            )
        )
    return out


def _score_hit(rule: str, action: Action, s: Score, reason: str) -> RuleHit:
    return RuleHit(
        rule=f"{rule}:{s.category.value}",
        action=action,
        reason=reason,
        severity=s.severity,
        score=s.score,
        category=s.category,
    )


def _hash_matches(results: Sequence[ClassifierResult], ctx: PolicyContext) -> list[HashMatch]:
    """The context's hash matches and those in the results' evidence, once each."""
    found = list(ctx.hash_matches)
    for r in results:
        for e in r.evidence:
            if isinstance(e, HashMatchEvidence):
                found.append(
                    HashMatch(e.bank, r.modality, e.part_id, e.category, e.entry_id, e.distance)
                )
    return sorted(set(found), key=lambda m: (m.bank, m.part_id, m.entry_id))


def _hash_hits(policy: Policy, matches: Sequence[HashMatch]) -> list[RuleHit]:
    out: list[RuleHit] = []
    seen: set[str] = set()
    for m in matches:
        if m.bank in seen:
            continue
        seen.add(m.bank)
        action, category, _ = policy.hash_matches.for_bank(m.bank)
        where = f" ({m.modality.value} part {m.part_id})" if m.part_id else ""
        out.append(
            RuleHit(
                rule=f"hash_match.{action}:{m.bank}",
                action=Action(action),
                reason=f"matches the known-bad hash bank {m.bank}{where}",
                severity=3,
                score=1.0,
                category=category or m.category,
                modality=m.modality,
            )
        )
    return out


def _inconsistency_hits(
    policy: Policy, ctx: PolicyContext, categories: Sequence[Score]
) -> list[RuleHit]:
    rules = policy.escalation.inconsistency
    if not rules:
        return []
    out: list[RuleHit] = []
    top = categories[0] if categories else None
    for sig in sorted(ctx.consistency, key=lambda c: c.name):
        for r in rules:
            if not r.fires(sig.name, sig.value):
                continue
            category = r.category or (top.category if top is not None else None)
            score = next((s for s in categories if s.category == category), None)
            detail = f": {sig.detail}" if sig.detail else ""
            out.append(
                RuleHit(
                    rule=f"inconsistency.{r.action}:{sig.name}",
                    action=Action(r.action),
                    reason=f"{sig.name} {sig.value:.2f} {r.bound()}{detail}",
                    severity=score.severity if score is not None else 0,
                    score=score.score if score is not None else 0.0,
                    category=category,
                )
            )
            break
    return out


def _escalation_trigger(policy: Policy, action: Action, hits: Sequence[RuleHit]) -> RuleHit | None:
    if action is Action.ESCALATE:
        return _strongest([h for h in hits if h.action is Action.ESCALATE])
    if action is not Action.BLOCK:
        return None
    # A block stands, but a person confirms it when it is uncertain, severe or the bank says so.
    blocked = {h.category for h in hits if h.action is Action.BLOCK}
    uncertain = [
        h for h in hits if h.rule.startswith("uncertainty.estimate:") and h.category in blocked
    ]
    if uncertain:
        return _strongest(uncertain)
    for h in hits:
        bank = h.rule.removeprefix("hash_match.block:")
        if bank != h.rule and policy.hash_matches.for_bank(bank)[2]:
            return h
    threshold = policy.escalation.review_blocks_at_severity
    if threshold is None:
        return None
    severe = [
        h
        for h in hits
        if h.action is Action.BLOCK
        and h.severity >= threshold
        and not h.rule.startswith("hash_match.")
    ]
    if not severe:
        return None
    strongest = _strongest(severe)
    return RuleHit(
        rule=f"severe_block_review:{strongest.category.value if strongest.category else ''}",
        action=Action.BLOCK,
        reason=f"high-severity block ({strongest.reason}) needs human confirmation",
        severity=strongest.severity,
        score=strongest.score,
        category=strongest.category,
    )


def _statement(
    policy: Policy,
    item: ItemLike,
    applied: Action,
    hits: Sequence[RuleHit],
    results: Sequence[ClassifierResult],
    modalities: Sequence[Modality],
    trigger: RuleHit | None,
) -> StatementOfReasons:
    decisive = [h for h in hits if h.action is not Action.ALLOW]
    # The ground cites the rule behind the restriction applied (the strongest rule when the
    # restriction is a hold while in review, or nothing is restricted yet).
    behind = [h for h in decisive if h.action is applied] or decisive
    basis = max(
        behind,
        key=lambda h: (h.action.rank, h.category is not None, h.severity, h.score),
        default=None,
    )
    cited = sorted({h.category for h in decisive if h.category is not None}, key=lambda c: c.value)
    models = sorted({f"{n}/{v}" for r in results for n, v in r.models})
    facts = "; ".join(h.reason for h in decisive)
    facts = f"Automated analysis under policy {policy.version}: {facts}."
    if models:
        facts += f" Models: {', '.join(models)}."
    return build_statement(
        policy.sor(item.tenant, item.surface),
        applied=applied.value,
        category=basis.category if basis is not None else None,
        categories=cited,
        modalities=modalities,
        facts=facts,
        provisional=trigger is not None,
        automated_decision=AUTOMATED_FULLY,
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
