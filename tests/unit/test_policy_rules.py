"""Every policy rule kind: restricting thresholds, hold while in review, uncertainty band and
estimate, inconsistency, hash matches, per-reason missing-signal fallbacks, per-category
severity, overrides of each, and hot reload deciding every item under exactly one version."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from crossguard.core.results import ClassifierResult, HashMatchEvidence, Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy import Action, MissingSignal, PolicyStore, decide, parse_policy
from crossguard.policy.inputs import ConsistencySignal, HashMatch, PolicyContext

pytestmark = pytest.mark.unit


@dataclass
class Item:
    tenant: str = "acme"
    surface: str = "comment"


def text(*scores: tuple[Category, float]) -> ClassifierResult:
    return ClassifierResult(Modality.TEXT, [Score(c, s, 0) for c, s in scores])


POLICY = parse_policy(
    """
version: "rules-1"
defaults: {escalate: 0.5, block: 0.9}
categories:
  sexual: {age_restrict: 0.3, limit_visibility: 0.45, escalate: 0.6, block: 0.95}
  violence/graphic: {age_restrict: 0.4, escalate: 0.8, block: null}
  spam: {limit_visibility: 0.5, escalate: null, block: null}
  sexual/minors: {escalate: 0.2, block: 0.6, severity_cuts: [0.1, 0.2, 0.3]}
signals:
  default: {fallback: escalate, on_reason: {not_configured: allow}}
  text: {on_reason: {unsupported_language: escalate, invalid_input: block}}
escalation:
  uncertainty: {band: 0.05, max_uncertainty: 0.4, min_score: 0.3}
  inconsistency:
    - {signal: "*_disagreement", at_least: 0.6}
    - {signal: "harmful_combination", at_least: 0.5, action: limit_visibility, category: hate}
    - {signal: "image_caption_agreement", at_most: 0.15}
hash_matches:
  banks:
    csam: {category: sexual/minors}
    terror: {action: escalate, category: extremism}
    reviewed: {review: true}
overrides:
  - name: kids
    match: {tenant: kids}
    categories: {sexual: {block: 0.5}}
    hold: limit_visibility
    signals: {text: {on_reason: {unsupported_language: block}}}
  - name: dm
    match: {surface: dm}
    hold: age_restrict
"""
)


def test_age_restrict_and_limit_visibility() -> None:
    d = decide(POLICY, Item(), [text((Category.SEXUAL, 0.35))], [])
    assert (d.action, d.applied) == (Action.AGE_RESTRICT, Action.AGE_RESTRICT)
    assert [h.rule for h in d.hits] == ["threshold.age_restrict:sexual"]
    assert not d.escalation.escalated
    d = decide(POLICY, Item(), [text((Category.SEXUAL, 0.5))], [])
    assert (d.action, d.applied) == (Action.LIMIT_VISIBILITY, Action.LIMIT_VISIBILITY)
    # Only the strongest threshold of a category fires.
    assert [h.rule for h in d.hits] == ["threshold.limit_visibility:sexual"]
    d = decide(POLICY, Item(), [text((Category.SPAM, 0.99))], [])
    assert d.action is Action.LIMIT_VISIBILITY


def test_escalation_keeps_the_restriction_reached_while_in_review() -> None:
    d = decide(POLICY, Item(), [text((Category.SEXUAL, 0.7))], [])
    assert d.action is Action.ESCALATE
    assert d.applied is Action.LIMIT_VISIBILITY
    assert [h.rule for h in d.hits] == [
        "threshold.escalate:sexual",
        "threshold.limit_visibility:sexual",
    ]
    assert d.escalation.rule == "threshold.escalate:sexual"


def test_hold_while_in_review_default_and_overrides() -> None:
    hate = [text((Category.HATE, 0.6))]
    assert decide(POLICY, Item(), hate, []).applied is Action.ALLOW
    assert decide(POLICY, Item(surface="dm"), hate, []).applied is Action.AGE_RESTRICT
    assert decide(POLICY, Item(tenant="kids"), hate, []).applied is Action.LIMIT_VISIBILITY
    # kids and dm are equally specific: the later override (dm) wins.
    assert POLICY.hold("kids", "dm") == "age_restrict"


def test_override_thresholds_per_tenant() -> None:
    assert decide(POLICY, Item(), [text((Category.SEXUAL, 0.55))], []).action is (
        Action.LIMIT_VISIBILITY
    )
    d = decide(POLICY, Item(tenant="kids"), [text((Category.SEXUAL, 0.55))], [])
    assert d.action is Action.BLOCK


def test_uncertainty_band_escalates_near_block() -> None:
    d = decide(POLICY, Item(), [text((Category.HATE, 0.87))], [])
    assert d.action is Action.ESCALATE
    assert [h.rule for h in d.hits] == ["threshold.escalate:hate", "uncertainty.band:hate"]
    d = decide(POLICY, Item(), [text((Category.HATE, 0.84))], [])
    assert [h.rule for h in d.hits] == ["threshold.escalate:hate"]
    # Below every other threshold, the band alone escalates (sexual: block 0.95, escalate 0.6).
    p = POLICY.model_copy(
        update={"categories": {Category.HATE: POLICY.categories[Category.SEXUAL]}}
    )
    d = decide(p, Item(), [text((Category.HATE, 0.91))], [])
    assert d.action is Action.ESCALATE
    assert "within 0.05 of the block threshold 0.95" in d.reasons[-1]
    # No block threshold: no band.
    d = decide(POLICY, Item(), [text((Category.VIOLENCE_GRAPHIC, 0.5))], [])
    assert d.action is Action.AGE_RESTRICT


def test_uncertainty_estimate_from_fusion() -> None:
    ctx = PolicyContext(uncertainty={Category.HARASSMENT: 0.5, Category.SEXUAL: 0.1})
    d = decide(POLICY, Item(), [text((Category.HARASSMENT, 0.35))], [], context=ctx)
    assert d.action is Action.ESCALATE
    assert d.escalation.rule == "uncertainty.estimate:harassment"
    # Below min_score the estimate does not matter.
    d = decide(POLICY, Item(), [text((Category.HARASSMENT, 0.25))], [], context=ctx)
    assert d.action is Action.ALLOW
    # A certain category is decided as the thresholds say.
    d = decide(POLICY, Item(), [text((Category.SEXUAL, 0.35))], [], context=ctx)
    assert d.action is Action.AGE_RESTRICT
    # An uncertain block stands, and a person confirms it.
    ctx = PolicyContext(uncertainty={Category.HATE: 0.45})
    d = decide(POLICY, Item(), [text((Category.HATE, 0.93))], [], context=ctx)
    assert (d.action, d.escalation.escalated) == (Action.BLOCK, True)
    assert d.escalation.rule == "uncertainty.estimate:hate"


def test_inconsistency_rules() -> None:
    ctx = PolicyContext(
        consistency=[
            ConsistencySignal("caption_ocr_disagreement", 0.7, (Modality.TEXT, Modality.IMAGE)),
            ConsistencySignal("caption_ocr_similarity", 0.9),
        ]
    )
    d = decide(POLICY, Item(), [text((Category.HATE, 0.2))], [], context=ctx)
    assert d.action is Action.ESCALATE
    assert d.escalation.rule == "inconsistency.escalate:caption_ocr_disagreement"
    assert d.hits[0].category is Category.HATE  # the top category when the rule names none
    low = PolicyContext(consistency=[ConsistencySignal("caption_ocr_disagreement", 0.5)])
    assert decide(POLICY, Item(), [text((Category.HATE, 0.2))], [], context=low).action is (
        Action.ALLOW
    )
    combo = PolicyContext(consistency=[ConsistencySignal("harmful_combination", 0.8, (), "x")])
    d = decide(POLICY, Item(), [text((Category.SPAM, 0.1))], [], context=combo)
    assert d.action is Action.LIMIT_VISIBILITY
    assert (d.hits[0].rule, d.hits[0].category) == (
        "inconsistency.limit_visibility:harmful_combination",
        Category.HATE,
    )
    assert d.reasons == ["harmful_combination 0.80 >= 0.50: x"]


def test_an_at_most_rule_fires_on_a_low_signal_only() -> None:
    def with_agreement(value: float) -> PolicyContext:
        return PolicyContext(consistency=[ConsistencySignal("image_caption_agreement", value)])

    d = decide(POLICY, Item(), [text((Category.HATE, 0.1))], [], context=with_agreement(0.1))
    assert d.action is Action.ESCALATE
    assert d.escalation.rule == "inconsistency.escalate:image_caption_agreement"
    assert d.reasons == ["image_caption_agreement 0.10 <= 0.15"]
    d = decide(POLICY, Item(), [text((Category.HATE, 0.1))], [], context=with_agreement(0.3))
    assert d.action is Action.ALLOW


def test_hash_match_blocks_without_review() -> None:
    ctx = PolicyContext(hash_matches=[HashMatch("csam", Modality.IMAGE, "image-0")])
    d = decide(POLICY, Item(), [text((Category.HATE, 0.1))], [], context=ctx)
    assert d.action is Action.BLOCK
    assert d.hits[0].rule == "hash_match.block:csam"
    assert d.hits[0].category is Category.SEXUAL_MINORS
    assert d.max_severity == 3
    assert not d.escalation.escalated  # known-bad: no severe-block review
    assert "matches the known-bad hash bank csam (image part image-0)" in d.reasons


def test_hash_match_from_classifier_evidence() -> None:
    """Vision reports bank matches as evidence; the policy takes them from the results."""
    image = ClassifierResult(
        Modality.IMAGE,
        [Score(Category.SEXUAL, 0.1, 0)],
        evidence=[HashMatchEvidence("image-0", Category.SEXUAL_MINORS, 1.0, "csam", 3, "e-17")],
    )
    d = decide(POLICY, Item(), [text((Category.HATE, 0.1)), image], [])
    assert d.action is Action.BLOCK
    assert d.hits[0].rule == "hash_match.block:csam"
    assert d.hash_matches == [
        HashMatch("csam", Modality.IMAGE, "image-0", Category.SEXUAL_MINORS, "e-17", 3)
    ]
    # The same match also named by the context counts once.
    ctx = PolicyContext(hash_matches=d.hash_matches)
    again = decide(POLICY, Item(), [text((Category.HATE, 0.1)), image], [], context=ctx)
    assert again.hash_matches == d.hash_matches
    assert [h.rule for h in again.hits] == ["hash_match.block:csam"]


def test_hash_match_bank_settings() -> None:
    unknown = PolicyContext(hash_matches=[HashMatch("other", Modality.IMAGE)])
    assert decide(POLICY, Item(), [], [], context=unknown).action is Action.BLOCK
    terror = PolicyContext(hash_matches=[HashMatch("terror", Modality.IMAGE)])
    d = decide(POLICY, Item(), [], [], context=terror)
    assert (d.action, d.hits[0].category) == (Action.ESCALATE, Category.EXTREMISM)
    reviewed = PolicyContext(hash_matches=[HashMatch("reviewed", Modality.IMAGE)])
    d = decide(POLICY, Item(), [], [], context=reviewed)
    assert (d.action, d.escalation.rule) == (Action.BLOCK, "hash_match.block:reviewed")


def test_missing_signal_fallback_by_reason() -> None:
    ok = [text((Category.HATE, 0.1))]
    d = decide(POLICY, Item(), ok, [MissingSignal(Modality.TEXT, "unsupported_language")])
    assert d.action is Action.ESCALATE
    assert d.missing[0].fallback == "escalate"
    assert d.hits[0].rule == "missing_signal.escalate:text"
    d = decide(POLICY, Item(), ok, [MissingSignal(Modality.TEXT, "invalid_input")])
    assert d.action is Action.BLOCK
    # The reason map is inherited from `default` for other modalities ...
    d = decide(POLICY, Item(), ok, [MissingSignal(Modality.IMAGE, "not_configured")])
    assert d.action is Action.ALLOW
    d = decide(POLICY, Item(), ok, [MissingSignal(Modality.IMAGE, "unavailable")])
    assert d.action is Action.ESCALATE
    # ... and an override's wins.
    d = decide(
        POLICY, Item(tenant="kids"), ok, [MissingSignal(Modality.TEXT, "unsupported_language")]
    )
    assert d.action is Action.BLOCK


def test_per_category_severity_cuts() -> None:
    d = decide(POLICY, Item(), [text((Category.SEXUAL_MINORS, 0.25), (Category.HATE, 0.25))], [])
    severities = {s.category: s.severity for s in d.categories}
    assert severities == {Category.SEXUAL_MINORS: 2, Category.HATE: 0}


def test_allow_has_no_statement_and_every_other_action_has_one() -> None:
    assert decide(POLICY, Item(), [text((Category.HATE, 0.1))], []).statement is None
    for score in (0.35, 0.5, 0.7, 0.97):
        d = decide(POLICY, Item(), [text((Category.SEXUAL, score))], [])
        assert d.action is not Action.ALLOW
        assert d.statement is not None, score


def _write(path: Path, version: str, block: float, step: int) -> None:
    path.write_text(f'version: "{version}"\ndefaults: {{escalate: 0.3, block: {block}}}\n')
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + step * 1_000_000_000))


def test_hot_reload_decides_each_item_under_exactly_one_version(tmp_path: Path) -> None:
    """Items decided while the file flips between two versions: each decision names one
    version and matches that version's rules, and none is lost."""
    path = tmp_path / "policy.yaml"
    _write(path, "v-block", 0.5, 0)
    store = PolicyStore(path, check_interval=0.0)
    blocks_at = {"v-block": 0.5, "v-escalate": 0.9}
    stop = threading.Event()

    def flip() -> None:
        step = 1
        while not stop.is_set():
            version = "v-escalate" if step % 2 else "v-block"
            _write(path, version, blocks_at[version], step)
            step += 1

    writer = threading.Thread(target=flip)
    writer.start()
    decided: list[tuple[str, Action]] = []
    try:
        # Until both versions decided items several times (bounded).
        while len(decided) < 20_000:
            policy = store.current()  # what the pipeline does once per item
            d = decide(policy, Item(), [text((Category.HATE, 0.7))], [])
            decided.append((d.policy_version, d.action))
            if (
                len(decided) >= 400
                and min(sum(1 for v, _ in decided if v == name) for name in blocks_at) >= 20
            ):
                break
    finally:
        stop.set()
        writer.join()
    assert {v for v, _ in decided} == set(blocks_at)
    for version, action in decided:
        assert action is (Action.BLOCK if version == "v-block" else Action.ESCALATE), version


def test_reload_refuses_new_rules_under_the_same_version(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    _write(path, "v1", 0.9, 0)
    store = PolicyStore(path, check_interval=0.0)
    _write(path, "v1", 0.5, 1)
    assert not store.maybe_reload()
    assert store.current().defaults.block == 0.9
    assert store.last_error is not None
    assert "version: the rules changed but version is still 'v1'" in str(store.last_error)
    _write(path, "v2", 0.5, 2)
    assert store.current().version == "v2"
