"""policy.decide: thresholds, overrides, missing-signal fallbacks, escalation rules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from crossguard.core.results import ClassifierResult, Modality, Score, max_scores
from crossguard.core.taxonomy import Category
from crossguard.policy import (
    Action,
    MissingSignal,
    Policy,
    decide,
    default_policy,
    parse_policy,
)

pytestmark = pytest.mark.unit


@dataclass
class Item:
    tenant: str = "acme"
    surface: str = "comment"


def text(*scores: tuple[Category, float]) -> ClassifierResult:
    return ClassifierResult(Modality.TEXT, [Score(c, s, 0) for c, s in scores])


POLICY = parse_policy(
    """
version: "t-1"
defaults: {escalate: 0.5, block: 0.9}
categories:
  sexual/minors: {escalate: 0.2, block: 0.6}
  profanity: {escalate: null, block: null}
  self-harm/intent: {block: null}
signals:
  default: {fallback: escalate, retries: 2, deadline_ms: 1000}
  image: {fallback: allow}
  audio: {fallback: block}
overrides:
  - name: dm
    match: {surface: dm}
    defaults: {escalate: 0.7}
  - name: kids-tenant
    match: {tenant: kids}
    defaults: {escalate: 0.3, block: 0.6}
    signals: {image: {fallback: escalate}}
  - name: kids-dm
    match: {tenant: kids, surface: dm}
    categories: {hate: {block: 0.5}}
"""
)


def test_allow_below_thresholds() -> None:
    d = decide(POLICY, Item(), [text((Category.HATE, 0.2))], [])
    assert d.action is Action.ALLOW
    assert d.policy_version == "t-1"
    assert not d.escalation.escalated
    assert d.reasons == ["no category reached a policy threshold"]


def test_escalate_names_rule_and_reason() -> None:
    d = decide(POLICY, Item(), [text((Category.HATE, 0.55))], [])
    assert d.action is Action.ESCALATE
    assert d.escalation.escalated
    assert d.escalation.rule == "threshold.escalate:hate"
    assert d.escalation.required_verdicts == 1
    assert "hate score 0.55 >= escalate threshold 0.50" in d.reasons[0]


def test_block_and_category_specific_thresholds() -> None:
    assert decide(POLICY, Item(), [text((Category.HATE, 0.95))], []).action is Action.BLOCK
    d = decide(POLICY, Item(), [text((Category.SEXUAL_MINORS, 0.65))], [])
    assert d.action is Action.BLOCK
    assert d.hits[0].rule == "threshold.block:sexual/minors"


def test_null_disables_action() -> None:
    assert decide(POLICY, Item(), [text((Category.PROFANITY, 0.99))], []).action is Action.ALLOW
    d = decide(POLICY, Item(), [text((Category.SELF_HARM_INTENT, 0.99))], [])
    assert d.action is Action.ESCALATE  # block disabled, escalate inherited


def test_high_severity_block_needs_two_verdicts() -> None:
    d = decide(POLICY, Item(), [text((Category.VIOLENCE, 0.97))], [])
    assert d.action is Action.BLOCK
    assert d.max_severity == 3
    assert d.escalation.escalated
    assert d.escalation.rule == "severe_block_review:violence"
    assert d.escalation.required_verdicts == 2


def test_medium_severity_block_not_escalated() -> None:
    p = POLICY.model_copy(update={"defaults": POLICY.defaults.model_copy(update={"block": 0.7})})
    d = decide(p, Item(), [text((Category.VIOLENCE, 0.75))], [])
    assert d.action is Action.BLOCK
    assert d.max_severity == 2
    assert not d.escalation.escalated


def test_surface_override_keeps_category_specific_rules() -> None:
    item = Item(surface="dm")
    assert decide(POLICY, item, [text((Category.HATE, 0.6))], []).action is Action.ALLOW
    # dm's defaults.escalate=0.7 must not loosen sexual/minors' 0.2
    d = decide(POLICY, item, [text((Category.SEXUAL_MINORS, 0.3))], [])
    assert d.action is Action.ESCALATE


def test_most_specific_override_wins() -> None:
    assert POLICY.thresholds(Category.HATE, "kids", "comment").block == 0.6
    assert POLICY.thresholds(Category.HATE, "kids", "dm").block == 0.5
    # dm and kids are equally specific: the later one in the file (kids) wins.
    assert POLICY.thresholds(Category.HATE, "kids", "dm").escalate == 0.3
    d = decide(POLICY, Item("kids", "dm"), [text((Category.HATE, 0.52))], [])
    assert d.action is Action.BLOCK


def test_missing_signal_fallbacks() -> None:
    results = [text((Category.HATE, 0.1))]
    for modality, fallback, action in [
        (Modality.TEXT, "escalate", Action.ESCALATE),
        (Modality.IMAGE, "allow", Action.ALLOW),
        (Modality.AUDIO, "block", Action.BLOCK),
    ]:
        d = decide(POLICY, Item(), results, [MissingSignal(modality, "unavailable")])
        assert d.action is action, modality
        assert d.missing == [MissingSignal(modality, "unavailable", fallback)]
        assert any(f"{modality.value} signal missing (unavailable)" in r for r in d.reasons)
    d = decide(POLICY, Item(), results, [MissingSignal(Modality.TEXT, "deadline_exceeded")])
    assert d.escalation.rule == "missing_signal.escalate:text"
    assert d.escalation.priority == 0.5


def test_missing_signal_override_per_tenant() -> None:
    d = decide(POLICY, Item(tenant="kids"), [], [MissingSignal(Modality.IMAGE, "not_configured")])
    assert d.action is Action.ESCALATE
    assert d.missing[0].fallback == "escalate"


def test_category_escalation_ranks_over_missing_signal() -> None:
    d = decide(
        POLICY,
        Item(),
        [text((Category.HARASSMENT, 0.7))],
        [MissingSignal(Modality.IMAGE, "unavailable"), MissingSignal(Modality.TEXT, "x")],
    )
    assert d.escalation.rule == "threshold.escalate:harassment"
    assert [m.modality for m in d.missing] == [Modality.IMAGE, Modality.TEXT]


def test_fusion_takes_max_and_fused_overrides() -> None:
    r1 = text((Category.HATE, 0.3), (Category.SPAM, 0.8))
    r2 = ClassifierResult(Modality.IMAGE, [Score(Category.HATE, 0.6, 2)])
    fused = {s.category: s.score for s in max_scores([r1, r2])}
    assert fused == {Category.HATE: 0.6, Category.SPAM: 0.8}
    d = decide(POLICY, Item(), [r1, r2], [], fused=[Score(Category.HATE, 0.1, 0)])
    assert d.action is Action.ALLOW
    assert [s.category for s in d.categories] == [Category.HATE]


def test_severity_uses_policy_cuts() -> None:
    d = decide(POLICY, Item(), [text((Category.SPAM, 0.61), (Category.HATE, 0.31))], [])
    assert [(s.category, s.severity) for s in d.categories] == [
        (Category.SPAM, 2),
        (Category.HATE, 1),
    ]


def test_decide_is_pure() -> None:
    args = (POLICY, Item(), [text((Category.HATE, 0.55))], [MissingSignal(Modality.IMAGE, "x")])
    assert decide(*args) == decide(*args)


def test_default_policy_loads_and_has_version() -> None:
    p = default_policy()
    assert isinstance(p, Policy)
    assert p.version
    assert p.thresholds(Category.HATE).escalate == 0.56
    assert p.thresholds(Category.HATE).block == 0.9
    # Categories without their own entry use the defaults.
    assert p.thresholds(Category.SPAM).escalate == 0.5
    assert p.signal(Modality.TEXT).fallback == "escalate"
    assert p.escalation.high_severity_required_verdicts == 2
