"""Statements of reasons: the Art. 17 content from the policy, their proto form in the decision,
and the DSA Transparency Database submission written by `sor export`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToDict

from crossguard.core.errors import InvalidInput
from crossguard.core.proto_convert import modality_to_proto, score_to_proto
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy import Action, MissingSignal, decide, default_policy, parse_policy
from crossguard.policy.inputs import ConsistencySignal, HashMatch, PolicyContext
from crossguard.policy.proto import (
    action_to_proto,
    context_from_protos,
    fill_policy_fields,
    recorded_inputs,
)
from crossguard.policy.sor import AUTOMATED_FULLY, statement_for_review
from crossguard.policy.sor_export import MAX_BATCH, export, read_decisions, tdb_statement
from crossguard.v1 import consistency_pb2, decision_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit

POLICY = parse_policy(
    """
version: "sor-1"
categories:
  sexual: {age_restrict: 0.3, escalate: 0.6, block: 0.95}
  sexual/minors: {escalate: 0.2, block: 0.6}
  spam: {limit_visibility: 0.5, escalate: null, block: null}
statement_of_reasons:
  territorial_scope: [DE, fr]
  restrictions:
    limit_visibility: {visibility: [content_demoted, content_labelled], duration_days: 30}
    block:
      visibility: [content_removed]
      account: suspended
      duration_days: 7
  default_ground: {clause: "ToS 4.1", reference_url: "https://example.org/tos#4.1"}
  grounds:
    sexual/minors:
      kind: illegal_content
      legal_ground: "Directive 2011/93/EU"
      explanation: "Sexual content involving minors is illegal."
      statement_category: protection_of_minors
      specification: [child_sexual_abuse_material]
    spam:
      clause: "ToS 7 (spam)"
      also_illegal: false
      statement_category: scams_and_fraud
  redress:
    - {kind: internal_complaint, detail: "Appeal at https://example.org/appeal"}
    - {kind: judicial_redress, detail: "Courts of your country"}
"""
)
MODELS = [("minilm-l6-encoder", "3-int8"), ("text-heads", "3")]


@dataclass
class Item:
    tenant: str = "acme"
    surface: str = "comment"


def text(*scores: tuple[Category, float]) -> ClassifierResult:
    return ClassifierResult(Modality.TEXT, [Score(c, s, 0) for c, s in scores], models=MODELS)


def test_block_on_illegal_ground() -> None:
    d = decide(POLICY, Item(), [text((Category.SEXUAL_MINORS, 0.9))], [])
    s = d.statement
    assert s is not None
    assert [(r.kind, r.type, r.territorial_scope, r.duration_days) for r in s.restrictions] == [
        ("visibility", "DECISION_VISIBILITY_CONTENT_REMOVED", ("DE", "FR"), 7),
        ("account", "DECISION_ACCOUNT_SUSPENDED", ("DE", "FR"), 7),
    ]
    assert s.ground.kind == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert s.ground.legal_ground == "Directive 2011/93/EU"
    assert s.statement_category == "STATEMENT_CATEGORY_PROTECTION_OF_MINORS"
    assert s.category_specification == ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"]
    assert s.categories == [Category.SEXUAL_MINORS]
    assert s.content_types == ["CONTENT_TYPE_TEXT"]
    assert (s.automated_detection, s.automated_decision) == (True, AUTOMATED_FULLY)
    assert "sexual/minors score 0.90 >= block threshold 0.60" in s.facts
    assert "policy sor-1" in s.facts
    assert "minilm-l6-encoder/3-int8" in s.facts
    assert [r.kind for r in s.redress] == ["internal_complaint", "judicial_redress"]
    assert s.provisional  # severity-3 block: a person confirms it
    assert "considered illegal under Directive 2011/93/EU" in s.text
    assert "removed" in s.text and "for 7 days, in DE, FR" in s.text
    assert "Internal complaint: Appeal at https://example.org/appeal" in s.text


def test_restrictions_follow_the_applied_action() -> None:
    d = decide(POLICY, Item(), [text((Category.SPAM, 0.6))], [])
    assert d.action is Action.LIMIT_VISIBILITY
    assert d.statement is not None
    assert [r.type for r in d.statement.restrictions] == [
        "DECISION_VISIBILITY_CONTENT_DEMOTED",
        "DECISION_VISIBILITY_CONTENT_LABELLED",
    ]
    g = d.statement.ground
    assert (g.kind, g.clause) == ("DECISION_GROUND_INCOMPATIBLE_CONTENT", "ToS 7 (spam)")
    assert not d.statement.provisional
    d = decide(POLICY, Item(), [text((Category.SEXUAL, 0.4))], [])
    assert d.statement is not None
    # Defaults kept for the actions the policy does not name.
    assert [r.type for r in d.statement.restrictions] == [
        "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED"
    ]
    assert d.statement.restrictions[0].duration_days == 0  # indefinite


def test_escalation_pending_review_restricts_nothing_yet() -> None:
    d = decide(POLICY, Item(), [text((Category.HATE, 0.6))], [])
    assert (d.action, d.applied) == (Action.ESCALATE, Action.ALLOW)
    assert d.statement is not None
    assert d.statement.restrictions == []
    assert d.statement.provisional
    assert "stays available while it is reviewed" in d.statement.text
    # The default ground names the terms clause and its link.
    assert d.statement.ground.clause == "ToS 4.1"
    assert "See https://example.org/tos#4.1." in d.statement.text


def test_content_types_from_every_modality_of_the_item() -> None:
    ctx = PolicyContext(hash_matches=[HashMatch("csam", Modality.IMAGE, "image-0")])
    d = decide(
        POLICY,
        Item(),
        [text((Category.HATE, 0.1))],
        [MissingSignal(Modality.AUDIO, "unavailable")],
        context=ctx,
    )
    assert d.statement is not None
    # The context names no modalities: those of the results and the missing signals count.
    assert d.statement.content_types == ["CONTENT_TYPE_AUDIO", "CONTENT_TYPE_TEXT"]
    ctx = PolicyContext(hash_matches=ctx.hash_matches, modalities=[Modality.TEXT, Modality.IMAGE])
    d = decide(POLICY, Item(), [text((Category.HATE, 0.1))], [], context=ctx)
    assert d.statement is not None
    assert d.statement.content_types == ["CONTENT_TYPE_IMAGE", "CONTENT_TYPE_TEXT"]


def _message(
    decision_id: str,
    content_id: str,
    results: list[ClassifierResult],
    missing: list[MissingSignal],
    context: PolicyContext | None = None,
) -> decision_pb2.ModerationDecision:
    """A decision message as the pipeline records it (pipeline.process.build_decision)."""
    d = decide(POLICY, Item(), results, missing, context=context)
    msg = decision_pb2.ModerationDecision(
        decision_id=decision_id,
        content_id=content_id,
        tenant="acme",
        surface="comment",
        action=action_to_proto(d.action),
        reasons=d.reasons,
        policy_version=d.policy_version,
        decided_by="pipeline",
        final=not d.escalation.escalated,
    )
    msg.categories.extend(score_to_proto(s) for s in d.categories)
    msg.missing_signals.extend(
        decision_pb2.MissingSignal(
            modality=modality_to_proto(m.modality), reason=m.reason, fallback=m.fallback
        )
        for m in d.missing
    )
    msg.decided_at.FromDatetime(datetime(2026, 12, 4, 10, tzinfo=UTC))
    msg.content_created_at.FromDatetime(datetime(2026, 12, 3, 9, tzinfo=UTC))
    fill_policy_fields(msg, d)
    return msg


def test_decision_proto_carries_statement_and_replayable_inputs() -> None:
    ctx = PolicyContext(
        hash_matches=[HashMatch("csam", Modality.IMAGE, "image-0", Category.SEXUAL_MINORS)],
        uncertainty={Category.HATE: 0.2},
        locale="de-DE",
    )
    msg = _message("d-1", "c-1", [text((Category.HATE, 0.3))], [], context=ctx)
    assert msg.applied_action == taxonomy_pb2.ACTION_BLOCK
    assert msg.severity == 3
    assert [h.rule for h in msg.rule_hits] == ["hash_match.block:csam"]
    sor = msg.statement_of_reasons
    assert sor.puid == "d-1"
    assert sor.restrictions[0].type == "DECISION_VISIBILITY_CONTENT_REMOVED"
    assert list(sor.categories) == [taxonomy_pb2.CATEGORY_SEXUAL_MINORS]
    assert sor.text.startswith("Statement of reasons")
    rec = recorded_inputs(msg)
    assert rec.context.hash_matches == ctx.hash_matches
    assert rec.context.uncertainty == {Category.HATE: pytest.approx(0.2)}
    assert rec.context.locale == "de-DE"
    again = decide(POLICY, Item(), [], rec.missing, fused=rec.fused, context=rec.context)
    assert again.action is Action.BLOCK
    assert again.hits[0].rule == "hash_match.block:csam"


def test_tdb_statement_fields() -> None:
    msg = _message("d-2", "c-2", [text((Category.SEXUAL_MINORS, 0.7))], [])
    msg.policy_inputs.locale = "de-AT"
    row = tdb_statement(msg)
    assert row == {
        "decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "decision_account": "DECISION_ACCOUNT_SUSPENDED",
        "end_date_visibility_restriction": "2026-12-11",
        "end_date_account_restriction": "2026-12-11",
        "decision_ground": "DECISION_GROUND_ILLEGAL_CONTENT",
        "illegal_content_legal_ground": "Directive 2011/93/EU",
        "illegal_content_explanation": "Sexual content involving minors is illegal.",
        "category": "STATEMENT_CATEGORY_PROTECTION_OF_MINORS",
        "category_specification": ["KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"],
        "content_type": ["CONTENT_TYPE_TEXT"],
        "content_language": "DE",
        "content_date": "2026-12-03",
        "application_date": "2026-12-04",
        "territorial_scope": ["DE", "FR"],
        "decision_facts": msg.statement_of_reasons.facts,
        "source_type": "SOURCE_VOLUNTARY",
        "automated_detection": "Yes",
        "automated_decision": "AUTOMATED_DECISION_FULLY",
        "puid": "d-2",
    }
    spam = tdb_statement(_message("d-3", "c-3", [text((Category.SPAM, 0.6))], []))
    assert spam["incompatible_content_ground"] == "ToS 7 (spam)"
    assert spam["incompatible_content_illegal"] == "No"
    # No explanation in the policy: the facts explain.
    assert spam["incompatible_content_explanation"] == spam["decision_facts"]
    assert "illegal_content_legal_ground" not in spam


def test_export_writes_batches_of_standing_decisions(tmp_path: Path) -> None:
    msgs = [
        _message("d-allow", "c-allow", [text((Category.HATE, 0.1))], []),
        _message("d-review", "c-review", [text((Category.HATE, 0.6))], []),
        _message("d-spam", "c-spam", [text((Category.SPAM, 0.6))], []),
    ] + [_message(f"d-{i}", f"c-{i}", [text((Category.SPAM, 0.7))], []) for i in range(3)]
    # A reviewer's final decision for c-review, after the pipeline's provisional one.
    final = decision_pb2.ModerationDecision()
    final.CopyFrom(_message("d-final", "c-review", [text((Category.SPAM, 0.9))], []))
    final.decided_by, final.final = "review", True
    recorded = tmp_path / "decisions.jsonl"
    lines = [json.dumps(MessageToDict(m)) for m in [*msgs, final]]
    recorded.write_text("\n".join([*lines[:2], "", "{not json", *lines[2:]]) + "\n")

    read = list(read_decisions(recorded))
    errors = [r for _, r in read if isinstance(r, str)]
    assert len(errors) == 1 and f"{recorded}:4: not a ModerationDecision" in errors[0]
    decisions = [r for _, r in read if not isinstance(r, str)]
    out = tmp_path / "sor.jsonl"
    report = export(decisions, out, batch_size=2)
    assert (report.decisions, report.exported) == (6, 5)
    assert report.skipped == {"allowed": 1}
    bodies = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(b["statements"]) for b in bodies] == [2, 2, 1]
    puids = [s["puid"] for b in bodies for s in b["statements"]]
    assert sorted(puids) == ["d-0", "d-1", "d-2", "d-final", "d-spam"]
    report = export(decisions, out, batch_size=1)
    assert [json.loads(line)["puid"] for line in out.read_text().splitlines()] == [
        "d-final",
        "d-spam",
        "d-0",
        "d-1",
        "d-2",
    ]
    with pytest.raises(InvalidInput, match=f"batch size must be 1..{MAX_BATCH}"):
        export(decisions, out, batch_size=MAX_BATCH + 1)


def test_default_policy_has_statements_for_its_categories() -> None:
    policy = default_policy()
    sor = policy.statement_of_reasons
    assert "DE" in sor.territorial_scope and "NO" in sor.territorial_scope
    assert sor.ground(Category.SEXUAL_MINORS).kind == "illegal_content"
    assert sor.ground(Category.HATE).statement_category == "illegal_or_harmful_speech"
    assert {r.kind for r in sor.redress} == {
        "internal_complaint",
        "out_of_court_settlement",
        "judicial_redress",
    }
    d = decide(policy, Item(), [text((Category.SEXUAL, 0.65))], [])
    assert d.action is Action.AGE_RESTRICT
    assert d.statement is not None
    assert d.statement.statement_category == "STATEMENT_CATEGORY_PORNOGRAPHY_OR_SEXUALIZED_CONTENT"


def test_context_from_the_consistency_answer() -> None:
    check = consistency_pb2.CheckResponse(
        signals=[
            consistency_pb2.ConsistencySignal(
                name="caption_ocr_disagreement",
                value=0.75,
                modalities=[taxonomy_pb2.MODALITY_TEXT, taxonomy_pb2.MODALITY_IMAGE],
                detail="caption benign, OCR text hateful",
            )
        ]
    )
    ctx = context_from_protos(check, locale="fr-FR")
    assert ctx.locale == "fr-FR"
    assert ctx.consistency == [
        ConsistencySignal(
            "caption_ocr_disagreement",
            0.75,
            (Modality.TEXT, Modality.IMAGE),
            "caption benign, OCR text hateful",
        )
    ]
    assert context_from_protos(None).consistency == []


def test_tenant_override_brings_its_own_statement_section() -> None:
    policy = parse_policy(
        """
version: "t"
statement_of_reasons:
  default_ground: {clause: "Platform terms 1"}
overrides:
  - name: shop
    match: {tenant: shop}
    statement_of_reasons:
      territorial_scope: [AT]
      default_ground: {clause: "Shop terms 9", statement_category: scams_and_fraud}
      redress: [{kind: internal_complaint, detail: "shop appeals"}]
"""
    )
    base = decide(policy, Item(), [text((Category.SPAM, 0.95))], [])
    shop = decide(policy, Item(tenant="shop"), [text((Category.SPAM, 0.95))], [])
    assert base.statement is not None and shop.statement is not None
    assert base.statement.ground.clause == "Platform terms 1"
    assert len(base.statement.restrictions[0].territorial_scope) == 30  # the EEA
    assert shop.statement.ground.clause == "Shop terms 9"
    assert shop.statement.statement_category == "STATEMENT_CATEGORY_SCAMS_AND_FRAUD"
    assert shop.statement.restrictions[0].territorial_scope == ("AT",)
    assert [r.detail for r in shop.statement.redress] == ["shop appeals"]


def test_statement_for_a_review_verdict() -> None:
    s = statement_for_review(
        POLICY.statement_of_reasons,
        action="block",
        categories=[Category.SEXUAL_MINORS],
        modalities=[Modality.IMAGE],
        facts="A reviewer confirmed the automated finding.",
    )
    assert s.automated_decision == "AUTOMATED_DECISION_PARTIALLY"
    assert not s.provisional
    assert s.ground.kind == "DECISION_GROUND_ILLEGAL_CONTENT"
    assert s.content_types == ["CONTENT_TYPE_IMAGE"]
    assert "taken by a person assisted by automated means" in s.text
