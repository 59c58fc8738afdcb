"""`crossguard policy simulate`: decide recorded items again under a new policy and count what
changes, per category and surface: actions, escalations and reviewer load, with examples.

The recorded format is JSON Lines of ModerationDecision messages (proto3 JSON, field names as in
decision.proto or camelCase), e.g. the decisions of `crossguard replay --record FILE`: each
carries the fused scores, missing signals, consistency signals and policy inputs the pipeline
decided on."""

from __future__ import annotations

import json
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from crossguard.core.results import Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy.engine import Action, Decision, MissingSignal, decide
from crossguard.policy.inputs import ConsistencySignal, HashMatch, PolicyContext
from crossguard.policy.jsonl import nonempty_lines
from crossguard.policy.model import Policy
from crossguard.policy.proto import RecordedItem
from crossguard.v1 import decision_pb2, taxonomy_pb2

NONE = "(none)"
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class Outcome:
    action: Action
    escalated: bool
    # Reviewer load: agreeing verdicts the escalation needs (0 when not escalated).
    reviews: int
    category: str
    rule: str
    # Enforced meanwhile: the action, or an escalation's hold while in review.
    applied: Action = Action.ALLOW

    @property
    def key(self) -> tuple[Action, bool, Action]:
        return (self.action, self.escalated, self.applied)


@dataclass(frozen=True)
class _Item:
    tenant: str
    surface: str


@dataclass
class GroupStats:
    items: int = 0
    changed: int = 0
    before: Counter[Action] = field(default_factory=Counter)
    after: Counter[Action] = field(default_factory=Counter)
    escalations_before: int = 0
    escalations_after: int = 0
    reviews_before: int = 0
    reviews_after: int = 0

    def add(self, old: Outcome, new: Outcome) -> None:
        self.items += 1
        self.changed += int(old.key != new.key)
        self.before[old.action] += 1
        self.after[new.action] += 1
        self.escalations_before += int(old.escalated)
        self.escalations_after += int(new.escalated)
        self.reviews_before += old.reviews
        self.reviews_after += new.reviews


@dataclass(frozen=True)
class ChangeKey:
    surface: str
    category: str
    before: str
    after: str


@dataclass
class Change:
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (content id, new rule)


@dataclass
class SimulationReport:
    new_version: str
    baseline: str
    items: int = 0
    skipped: list[str] = field(default_factory=list)
    total: GroupStats = field(default_factory=GroupStats)
    by_category: dict[str, GroupStats] = field(default_factory=lambda: defaultdict(GroupStats))
    by_surface: dict[str, GroupStats] = field(default_factory=lambda: defaultdict(GroupStats))
    changes: dict[ChangeKey, Change] = field(default_factory=lambda: defaultdict(Change))
    seconds: float = 0.0


def read_recorded(path: Path) -> Iterator[tuple[int, RecordedDecision | str]]:
    """(line number, decision) per non-empty line, or (line number, error) for a bad one."""
    for n, raw in nonempty_lines(path):
        try:
            row = json.loads(raw.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            yield n, recorded_from_json(row)
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            yield n, f"{path}:{n}: not a recorded ModerationDecision: {exc}"


def outcome_of(decision: Decision) -> Outcome:
    esc = decision.escalation
    basis = max(
        (h for h in decision.hits if h.action is not Action.ALLOW),
        key=lambda h: (h.action.rank, h.category is not None, h.severity, h.score),
        default=None,
    )
    category = basis.category.value if basis is not None and basis.category else NONE
    return Outcome(
        decision.action,
        esc.escalated,
        esc.required_verdicts if esc.escalated else 0,
        category,
        basis.rule if basis is not None else "",
        decision.applied,
    )


@dataclass(frozen=True)
class RecordedDecision:
    item: RecordedItem
    outcome: Outcome  # as recorded


def recorded_from_message(msg: decision_pb2.ModerationDecision) -> RecordedDecision:
    return recorded_from_json(json_format.MessageToDict(msg))


def recorded_outcome(msg: decision_pb2.ModerationDecision) -> Outcome:
    """The outcome as recorded in a decision message (whatever policy version decided it)."""
    return recorded_from_message(msg).outcome


_CATEGORY_RULES = ("threshold.", "uncertainty.", "severe_block_review:")


_F32 = struct.Struct("f")


def _f32(value: Any) -> float:
    """A proto `float` from JSON, as the pipeline saw it: rounded to float32 (JSON prints the
    shortest decimal, e.g. 0.65 for 0.6499999761581421, which could cross a threshold)."""
    result: float = _F32.unpack(_F32.pack(float(value)))[0]
    return result


def _get(row: dict[str, Any], snake: str, default: Any = None) -> Any:
    """A field by its proto name or its JSON (lowerCamelCase) name."""
    if snake in row:
        return row[snake]
    head, *rest = snake.split("_")
    return row.get(head + "".join(p.title() for p in rest), default)


def _enum(value: Any, prefix: str) -> str:
    """An enum value as its name without prefix, from its JSON name or number."""
    if value is None:  # proto3 JSON leaves out zero values
        return "UNSPECIFIED"
    if isinstance(value, int):
        return _ENUM_NAMES[prefix].get(value, "")
    return str(value).removeprefix(prefix)


_ENUM_NAMES: dict[str, dict[int, str]] = {
    "ACTION_": {v: k.removeprefix("ACTION_") for k, v in taxonomy_pb2.Action.items()},
    "CATEGORY_": {v: k.removeprefix("CATEGORY_") for k, v in taxonomy_pb2.Category.items()},
    "MODALITY_": {v: k.removeprefix("MODALITY_") for k, v in taxonomy_pb2.Modality.items()},
}
_CATEGORIES = {c.name: c for c in Category}
_MODALITIES = {m.name: m for m in Modality}
_ACTIONS = {a.name: a for a in Action}


def _category(value: Any) -> Category | None:
    name = _enum(value, "CATEGORY_")
    if name in ("", "UNSPECIFIED"):
        return None
    try:
        return _CATEGORIES[name]
    except KeyError:
        raise ValueError(f"unknown category {value!r}") from None


def _modality(value: Any) -> Modality:
    try:
        return _MODALITIES[_enum(value, "MODALITY_")]
    except KeyError:
        raise ValueError(f"unknown modality {value!r}") from None


def _action(value: Any) -> Action:
    try:
        return _ACTIONS[_enum(value, "ACTION_")]
    except KeyError:
        raise ValueError(f"unknown action {value!r}") from None


def _obj(value: Any, field: str) -> dict[str, Any]:
    """A JSON object field (absent: empty); anything else is a bad line, not a crash."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{field}: expected an object, got {type(value).__name__}")
    return value


def _objs(value: Any, field: str) -> list[dict[str, Any]]:
    """A repeated message field: a JSON list of objects (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{field}: expected a list of objects")
    return value


def _values(value: Any, field: str) -> list[Any]:
    """A repeated scalar field: a JSON list (absent: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{field}: expected a list, got {type(value).__name__}")
    return value


def recorded_from_json(row: dict[str, Any]) -> RecordedDecision:
    """What simulate needs from a ModerationDecision in proto3 JSON, read straight from the
    parsed JSON (json_format.Parse would take most of a simulation's time)."""
    inputs = _obj(_get(row, "policy_inputs"), "policy_inputs")
    fused = []
    for cat in _objs(_get(row, "categories"), "categories"):
        category = _category(cat.get("category"))
        if category is not None:
            fused.append(Score(category, _f32(cat.get("score", 0.0)), int(cat.get("severity", 0))))
    context = PolicyContext(
        consistency=[
            ConsistencySignal(
                str(c.get("name", "")),
                _f32(c.get("value", 0.0)),
                tuple(_modality(m) for m in _values(c.get("modalities"), "modalities")),
                str(c.get("detail", "")),
            )
            for c in _objs(_get(row, "consistency"), "consistency")
        ],
        hash_matches=[
            HashMatch(
                str(match.get("bank", "")),
                _modality(m.get("modality")),
                str(_get(m, "part_id", "")),
                _category(m.get("category")),
                str(_get(match, "entry_id", "")),
                int(match.get("distance", 0)),
            )
            for m in _objs(_get(inputs, "hash_matches"), "hash_matches")
            for match in (_obj(m.get("match"), "match"),)
        ],
        uncertainty={
            c: _f32(u.get("uncertainty", 0.0))
            for u in _objs(inputs.get("uncertainty"), "uncertainty")
            if (c := _category(u.get("category"))) is not None
        },
        modalities=[_modality(m) for m in _values(inputs.get("modalities"), "modalities")],
        locale=str(inputs.get("locale", "")),
    )
    item = RecordedItem(
        content_id=str(_get(row, "content_id", "")),
        tenant=str(row.get("tenant", "")),
        surface=str(row.get("surface", "")),
        fused=fused,
        missing=[
            MissingSignal(_modality(m.get("modality")), str(m.get("reason", "")))
            for m in _objs(_get(row, "missing_signals"), "missing_signals")
        ],
        context=context,
    )
    esc = _obj(row.get("escalation"), "escalation")
    escalated = bool(esc.get("escalated", False))
    rule = str(esc.get("rule", ""))
    decisive = NONE
    hits = [
        h
        for h in _objs(_get(row, "rule_hits"), "rule_hits")
        if _action(h.get("action", 0)) is not Action.ALLOW
    ]
    if hits:
        best = max(
            hits,
            key=lambda h: (
                _action(h.get("action")).rank,
                _category(h.get("category")) is not None,
                int(h.get("severity", 0)),
                _f32(h.get("score", 0.0)),
            ),
        )
        rule = str(best.get("rule", ""))
        best_category = _category(best.get("category"))
        decisive = best_category.value if best_category is not None else NONE
    elif rule.startswith(_CATEGORY_RULES):
        # Decisions recorded before rule hits were: the escalation rule names the category.
        decisive = rule.split(":", 1)[1] or NONE
    reviews = int(_get(esc, "required_verdicts", 0)) if escalated else 0
    action = _action(row.get("action", 0))
    applied_value = _get(row, "applied_action")
    # Recorded before the field existed: an escalation left the item up.
    applied = (
        _action(applied_value)
        if applied_value is not None
        else (Action.ALLOW if action is Action.ESCALATE else action)
    )
    outcome = Outcome(action, escalated, reviews, decisive, rule, applied)
    return RecordedDecision(item, outcome)


def _decide(policy: Policy, rec: RecordedItem) -> Decision:
    return decide(
        policy,
        _Item(rec.tenant, rec.surface),
        [],
        rec.missing,
        fused=rec.fused,
        context=rec.context,
    )


def _label(o: Outcome) -> str:
    held = f" (holds {o.applied.value})" if o.applied not in (o.action, Action.ALLOW) else ""
    return f"{o.action.value}{held}{' +review' if o.escalated else ''}"


def simulate(
    policy: Policy,
    recorded: Iterable[tuple[int, RecordedDecision | str]],
    *,
    baseline: Policy | None = None,
) -> SimulationReport:
    """Decide every recorded item under `policy` and compare with the recorded outcome (or
    with `baseline` deciding the same inputs)."""
    start = time.perf_counter()
    report = SimulationReport(
        new_version=policy.version,
        baseline=baseline.version if baseline is not None else "as recorded",
    )
    for _, recorded_decision in recorded:
        if isinstance(recorded_decision, str):
            report.skipped.append(recorded_decision)
            continue
        rec = recorded_decision.item
        old = (
            outcome_of(_decide(baseline, rec))
            if baseline is not None
            else recorded_decision.outcome
        )
        new = outcome_of(_decide(policy, rec))
        category = new.category if new.category != NONE else old.category
        surface = rec.surface or NONE
        report.items += 1
        report.total.add(old, new)
        report.by_category[category].add(old, new)
        report.by_surface[surface].add(old, new)
        if old.key != new.key:
            change = report.changes[ChangeKey(surface, category, _label(old), _label(new))]
            change.count += 1
            if len(change.examples) < MAX_EXAMPLES:
                change.examples.append((rec.content_id, new.rule or old.rule))
    report.seconds = time.perf_counter() - start
    return report
