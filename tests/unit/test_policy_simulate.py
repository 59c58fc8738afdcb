"""`crossguard policy simulate` and `policy diff`: recorded decisions decided again under a new
policy, per category and surface; rule changes as written and as they take effect; the CLI."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.protobuf.json_format import MessageToDict

from crossguard.cli.main import cli
from crossguard.core.proto_convert import modality_to_proto, score_to_proto
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy import Action, MissingSignal, Policy, PolicyError, decide, parse_policy
from crossguard.policy.diff import diff_policies
from crossguard.policy.inputs import ConsistencySignal, HashMatch, PolicyContext
from crossguard.policy.proto import action_to_proto, fill_policy_fields, recorded_inputs
from crossguard.policy.simulate import (
    ChangeKey,
    read_recorded,
    recorded_from_json,
    recorded_from_message,
    recorded_outcome,
    simulate,
)
from crossguard.v1 import consistency_pb2, decision_pb2

pytestmark = pytest.mark.unit

OLD_TEXT = """\
version: "old"
defaults: {escalate: 0.5, block: 0.9}
categories:
  spam: {escalate: null, block: null}
overrides:
  - name: dm
    match: {surface: dm}
    defaults: {escalate: 0.7}
"""
NEW_TEXT = """\
version: "new"
defaults: {escalate: 0.5, block: 0.9}
categories:
  hate: {limit_visibility: 0.3, escalate: 0.6, block: 0.8}
  spam: {escalate: null, block: null}
escalation:
  inconsistency: [{signal: "*_disagreement", at_least: 0.5}]
overrides:
  - name: dm
    match: {surface: dm}
    defaults: {escalate: 0.7}
    hold: limit_visibility
  - name: kids
    match: {tenant: kids}
    categories: {spam: {block: 0.5}}
"""
OLD, NEW = parse_policy(OLD_TEXT), parse_policy(NEW_TEXT)


@dataclass
class Item:
    tenant: str
    surface: str


def record(
    policy: Policy,
    cid: str,
    scores: dict[Category, float],
    *,
    tenant: str = "acme",
    surface: str = "comment",
    missing: tuple[MissingSignal, ...] = (),
    context: PolicyContext | None = None,
) -> decision_pb2.ModerationDecision:
    """A decision as the pipeline records it (pipeline.process.build_decision)."""
    result = ClassifierResult(Modality.TEXT, [Score(c, s, 0) for c, s in scores.items()])
    d = decide(policy, Item(tenant, surface), [result], list(missing), context=context)
    msg = decision_pb2.ModerationDecision(
        decision_id=f"d-{cid}",
        content_id=cid,
        tenant=tenant,
        surface=surface,
        action=action_to_proto(d.action),
        reasons=d.reasons,
        policy_version=d.policy_version,
    )
    msg.categories.extend(score_to_proto(s) for s in d.categories)
    msg.missing_signals.extend(
        decision_pb2.MissingSignal(modality=modality_to_proto(m.modality), reason=m.reason)
        for m in d.missing
    )
    msg.escalation.CopyFrom(
        decision_pb2.Escalation(
            escalated=d.escalation.escalated,
            rule=d.escalation.rule,
            required_verdicts=d.escalation.required_verdicts,
        )
    )
    if context is not None:
        msg.consistency.extend(
            consistency_pb2.ConsistencySignal(name=c.name, value=c.value)
            for c in context.consistency
        )
    fill_policy_fields(msg, d)
    return msg


def write(path: Path, msgs: list[decision_pb2.ModerationDecision], camel: bool = False) -> Path:
    lines = [json.dumps(MessageToDict(m, preserving_proto_field_name=not camel)) for m in msgs]
    path.write_text("\n".join(lines) + "\n")
    return path


RECORDED = [
    record(OLD, "hate-low", {Category.HATE: 0.35}),  # allow → limit_visibility
    record(OLD, "hate-mid", {Category.HATE: 0.55}),  # escalate → limit_visibility
    record(OLD, "hate-high", {Category.HATE: 0.85}),  # escalate → block
    record(OLD, "hate-dm", {Category.HATE: 0.75}, surface="dm"),  # escalate, now held
    record(OLD, "spam-kids", {Category.SPAM: 0.6}, tenant="kids"),  # allow → block
    record(OLD, "benign", {Category.HATE: 0.05}),  # allow → allow
    record(
        OLD,
        "combo",
        {Category.VIOLENCE: 0.2},
        context=PolicyContext(consistency=[ConsistencySignal("caption_ocr_disagreement", 0.8)]),
    ),  # allow → escalate
    record(OLD, "no-text", {}, missing=(MissingSignal(Modality.TEXT, "unavailable"),)),
]


def test_json_reader_matches_the_proto_path() -> None:
    ctx = PolicyContext(
        consistency=[ConsistencySignal("caption_ocr_disagreement", 0.8)],
        hash_matches=[HashMatch("csam", Modality.IMAGE, "image-0", Category.SEXUAL_MINORS)],
        uncertainty={Category.HATE: 0.25},
        modalities=[Modality.IMAGE, Modality.TEXT],
        locale="en",
    )
    msg = record(NEW, "x", {Category.HATE: 0.65}, missing=(MissingSignal(Modality.AUDIO, "x"),))
    msg.consistency.add(name="caption_ocr_disagreement", value=0.8)
    fill_policy_fields(msg, decide(NEW, Item("a", "b"), [], [], context=ctx))
    for camel in (False, True):
        got = recorded_from_json(MessageToDict(msg, preserving_proto_field_name=not camel))
        assert got.item == recorded_inputs(msg)
        assert got.outcome == recorded_outcome(msg)


def test_simulate_counts_changes_per_category_and_surface() -> None:
    report = simulate(NEW, [(i, recorded_from_message(m)) for i, m in enumerate(RECORDED)])
    assert (report.items, report.baseline, report.new_version) == (8, "as recorded", "new")
    total = report.total
    assert total.before[Action.ALLOW] == 4 and total.after[Action.ALLOW] == 1
    assert total.after[Action.LIMIT_VISIBILITY] == 2
    assert total.after[Action.BLOCK] == 2
    # hate-low, hate-mid, hate-high, hate-dm (now held), spam-kids, combo; benign and no-text
    # unchanged.
    assert total.changed == 6
    hate = report.by_category["hate"]
    assert (hate.items, hate.changed) == (4, 4)
    assert (hate.escalations_before, hate.escalations_after) == (3, 2)
    assert report.by_category["spam"].after[Action.BLOCK] == 1
    assert report.by_category["(none)"].items == 2  # benign, and the missing text signal
    assert report.by_surface["dm"].items == 1 and report.by_surface["dm"].changed == 1
    held = report.changes[
        ChangeKey("dm", "hate", "escalate +review", "escalate (holds limit_visibility) +review")
    ]
    assert held.examples == [("hate-dm", "threshold.escalate:hate")]
    change = report.changes[ChangeKey("comment", "hate", "allow", "limit_visibility")]
    assert change.count == 1
    assert change.examples == [("hate-low", "threshold.limit_visibility:hate")]
    combo = report.changes[ChangeKey("comment", "violence", "allow", "escalate +review")]
    assert combo.examples == [("combo", "inconsistency.escalate:caption_ocr_disagreement")]
    # Reviewer load: agreeing verdicts needed over the escalated items.
    assert total.reviews_after - total.reviews_before == (
        total.escalations_after - total.escalations_before
    )
    assert report.seconds > 0


def test_simulate_against_a_baseline_policy() -> None:
    same = simulate(
        OLD, [(i, recorded_from_message(m)) for i, m in enumerate(RECORDED)], baseline=OLD
    )
    assert same.total.changed == 0 and not same.changes
    assert same.baseline == "old"


def test_bad_lines_are_skipped_with_their_line(tmp_path: Path) -> None:
    path = write(tmp_path / "rec.jsonl", RECORDED[:2], camel=True)
    with path.open("a") as f:
        f.write("\n[1, 2]\n")
        f.write(json.dumps({"content_id": "x", "action": "ACTION_NOPE"}) + "\n")
    rows = list(read_recorded(path))
    errors = [r for _, r in rows if isinstance(r, str)]
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:4", f"{path}:5"]
    assert "unknown action 'ACTION_NOPE'" in errors[1]
    report = simulate(NEW, rows)
    assert report.items == 2 and len(report.skipped) == 2


MALFORMED = [
    '{"categories": "x"}',
    '{"categories": [1]}',
    '{"escalation": "x"}',
    '{"policyInputs": []}',
    '{"policyInputs": {"hashMatches": [{"match": "x"}]}}',
    '{"policyInputs": {"uncertainty": [3]}}',
    '{"policyInputs": {"modalities": 3}}',
    '{"consistency": [{"modalities": 1}]}',
    '{"missingSignals": {"a": 1}}',
    '{"ruleHits": ["x"]}',
    "[" * 100_000,
]


def test_malformed_lines_are_bad_lines_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path / "rec.jsonl", RECORDED[:1], camel=True)
    with path.open("ab") as f:
        f.write("\n".join(MALFORMED).encode() + b"\n")
        f.write(b'{"content_id": "\xff"}\n')  # not UTF-8
    rows = list(read_recorded(path))
    errors = [r for _, r in rows if isinstance(r, str)]
    lines = [f"{path}:{n}" for n in range(2, 3 + len(MALFORMED))]
    assert [e.split(": ", 1)[0] for e in errors] == lines
    assert "categories: expected a list of objects" in errors[0]
    assert "escalation: expected an object, got str" in errors[2]
    new = tmp_path / "new.yaml"
    new.write_text(NEW_TEXT)
    out = CliRunner().invoke(
        cli, ["policy", "simulate", str(new), "--against", str(path)], env={"COLUMNS": "200"}
    )
    assert out.exception is None, out.exception
    assert out.exit_code == 0, out.output


def test_sor_export_reports_malformed_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "rec.jsonl", RECORDED[:1], camel=True)
    with path.open("ab") as f:
        f.write(b'{"content_id": "\xff"}\n')
        f.write(b'"just a string"\n')
        restricted = {
            "action": "ACTION_BLOCK",
            "statementOfReasons": {"restrictions": [{"kind": "bogus", "durationDays": 3}]},
        }
        f.write(json.dumps(restricted).encode() + b"\n")
    out = CliRunner().invoke(
        cli, ["sor", "export", str(path), "-o", str(tmp_path / "sor.jsonl")], env={"COLUMNS": "300"}
    )
    assert out.exception is None, out.exception
    assert out.exit_code == 0, out.output
    assert "from 1 decisions" in out.output
    for n in (2, 3, 4):
        assert f"rec.jsonl:{n}: not a ModerationDecision" in out.output.replace("\n", "")
    assert "restriction kind 'bogus'" in out.output.replace("\n", "")


def test_diff_as_written_and_effective() -> None:
    d = diff_policies(OLD, NEW)
    settings = {c.path: (c.kind, c.before, c.after) for c in d.settings}
    assert settings["categories.hate.block"][0] == "added"
    assert settings["categories.hate.block"][2] == 0.8
    assert "categories.hate.age_restrict" not in settings  # left out: inherits
    assert settings["overrides[dm].hold"][0] == "added"
    assert settings["overrides[kids]"][0] == "added"
    assert "kids" in str(settings["overrides[kids]"][2])
    assert settings["escalation.inconsistency"][0] == "added"
    effective = {(e.scope, e.subject, e.setting): (e.before, e.after) for e in d.effective}
    assert effective[("tenant=* surface=*", "hate", "block")] == (0.9, 0.8)
    assert effective[("tenant=* surface=*", "hate", "limit_visibility")] == (None, 0.3)
    assert effective[("tenant=kids surface=*", "spam", "block")] == (None, 0.5)
    assert effective[("tenant=* surface=dm", "escalation", "hold")] == ("allow", "limit_visibility")
    # dm's escalate for hate changes like the base scope's: listed once, under the base.
    assert ("tenant=* surface=dm", "hate", "block") not in effective
    # dm escalates at 0.7 by default, but hate's own 0.6 now wins there.
    assert effective[("tenant=* surface=dm", "hate", "escalate")] == (0.7, 0.6)
    assert diff_policies(NEW, NEW).empty


def test_cli_simulate_diff_check_and_sor_export(tmp_path: Path) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(NEW_TEXT)
    old = tmp_path / "old.yaml"
    old.write_text(OLD_TEXT)
    rec = write(tmp_path / "rec.jsonl", RECORDED)
    runner = CliRunner()
    env = {"COLUMNS": "200"}

    out = runner.invoke(cli, ["policy", "simulate", str(new), "--against", str(rec)], env=env)
    assert out.exit_code == 0, out.output
    assert "simulated policy new against as recorded on 8 recorded decisions" in out.output
    assert "by category" in out.output and "by surface" in out.output
    assert "hate-low (threshold.limit_visibility:hate)" in out.output
    assert "time: " in out.output and "for 8 recorded decisions" in out.output

    out = runner.invoke(
        cli,
        ["policy", "simulate", str(new), "--against", str(rec), "--baseline", str(old)],
        env=env,
    )
    assert out.exit_code == 0 and "against old" in out.output

    out = runner.invoke(cli, ["policy", "diff", str(old), str(new)], env=env)
    assert out.exit_code == 0, out.output
    assert "overrides[kids]" in out.output and "tenant=kids surface=*" in out.output

    assert runner.invoke(cli, ["policy", "check", str(new)]).exit_code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text('version: "b"\ncategories:\n  hate: {block: 1.2}\n')
    out = runner.invoke(cli, ["policy", "check", str(bad)])
    assert isinstance(out.exception, PolicyError)
    assert f"{bad}:3: categories.hate.block: Input should be less than or equal to 1" in str(
        out.exception
    )

    # The same scores decided under the new policy (without their other inputs).
    rec_new = write(
        tmp_path / "rec-new.jsonl",
        [
            record(
                NEW,
                m.content_id,
                {Category.from_proto(c.category): c.score for c in m.categories},
                tenant=m.tenant,
                surface=m.surface,
            )
            for m in RECORDED
        ],
    )
    sor = tmp_path / "sor.jsonl"
    out = runner.invoke(cli, ["sor", "export", str(rec_new), "-o", str(sor)], env=env)
    assert out.exit_code == 0, out.output
    assert "5 statements of reasons from 8 decisions" in out.output
    assert "left out 3: allowed" in out.output  # benign, and combo and no-text as re-recorded
    statements = json.loads(sor.read_text())["statements"]
    assert {s["puid"]: s["decision_visibility"] for s in statements} == {
        "d-hate-low": ["DECISION_VISIBILITY_CONTENT_DEMOTED"],
        "d-hate-mid": ["DECISION_VISIBILITY_CONTENT_DEMOTED"],
        "d-hate-high": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
        "d-hate-dm": ["DECISION_VISIBILITY_CONTENT_DEMOTED"],  # held while in review
        "d-spam-kids": ["DECISION_VISIBILITY_CONTENT_REMOVED"],
    }
