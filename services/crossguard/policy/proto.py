"""The policy's part of a ModerationDecision (fields 30-34) and its way back: what the pipeline
records is enough for `crossguard policy simulate` to decide the item again."""

from __future__ import annotations

from dataclasses import dataclass

from crossguard.core.proto_convert import modality_from_proto, modality_to_proto, score_from_proto
from crossguard.core.results import Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy.engine import Action, Decision, MissingSignal
from crossguard.policy.inputs import ConsistencySignal, HashMatch, PolicyContext
from crossguard.policy.sor import StatementOfReasons
from crossguard.v1 import classifier_pb2, consistency_pb2, decision_pb2, taxonomy_pb2

_ACTION_TO_PROTO: dict[Action, taxonomy_pb2.Action.ValueType] = {
    a: taxonomy_pb2.Action.Value(f"ACTION_{a.name}") for a in Action
}
_ACTION_FROM_PROTO = {int(v): a for a, v in _ACTION_TO_PROTO.items()}


def action_to_proto(action: Action) -> taxonomy_pb2.Action.ValueType:
    return _ACTION_TO_PROTO[action]


def action_from_proto(value: int) -> Action:
    try:
        return _ACTION_FROM_PROTO[value]
    except KeyError:
        raise ValueError(f"unknown action enum value {value}") from None


def context_from_protos(
    check: consistency_pb2.CheckResponse | None = None, *, locale: str = ""
) -> PolicyContext:
    """The policy context from the consistency service's answer (its signals and the fusion's
    per-category uncertainty). Hash matches come with the classifier results' evidence. Unknown
    modalities and categories are skipped."""
    signals: list[ConsistencySignal] = []
    for s in check.signals if check is not None else ():
        modalities = tuple(_MODALITIES[m] for m in s.modalities if m in _MODALITIES)
        signals.append(ConsistencySignal(s.name, float(s.value), modalities, s.detail))
    uncertainty = {
        Category.from_proto(f.category): float(f.uncertainty)
        for f in (check.fused if check is not None else ())
        if f.category in _CATEGORY_VALUES
    }
    return PolicyContext(consistency=signals, uncertainty=uncertainty, locale=locale)


_MODALITIES = {modality_to_proto(m): m for m in Modality}
_CATEGORY_VALUES = {c.proto for c in Category}


def statement_to_proto(s: StatementOfReasons, puid: str) -> decision_pb2.StatementOfReasons:
    return decision_pb2.StatementOfReasons(
        puid=puid,
        restrictions=[
            decision_pb2.Restriction(
                kind=r.kind,
                type=r.type,
                detail=r.detail,
                territorial_scope=r.territorial_scope,
                duration_days=r.duration_days,
            )
            for r in s.restrictions
        ],
        facts=s.facts,
        automated_detection=s.automated_detection,
        automated_decision=s.automated_decision,
        ground=decision_pb2.DecisionGround(
            kind=s.ground.kind,
            legal_ground=s.ground.legal_ground,
            clause=s.ground.clause,
            explanation=s.ground.explanation,
            also_illegal=s.ground.also_illegal,
            reference_url=s.ground.reference_url,
        ),
        content_types=s.content_types,
        statement_category=s.statement_category,
        category_specification=s.category_specification,
        categories=[c.proto for c in s.categories],
        redress=[decision_pb2.Redress(kind=r.kind, detail=r.detail) for r in s.redress],
        source_type=s.source_type,
        provisional=s.provisional,
        text=s.text,
    )


def fill_policy_fields(msg: decision_pb2.ModerationDecision, decision: Decision) -> None:
    """Set the policy engine's fields of `msg` (its decision_id must be set: it is the
    statement's platform-unique id)."""
    msg.applied_action = action_to_proto(decision.applied)
    msg.severity = decision.max_severity
    for h in decision.hits:
        msg.rule_hits.append(
            decision_pb2.PolicyRuleHit(
                rule=h.rule,
                action=action_to_proto(h.action),
                reason=h.reason,
                severity=h.severity,
                score=h.score,
                category=h.category.proto if h.category else taxonomy_pb2.CATEGORY_UNSPECIFIED,
                modality=(
                    modality_to_proto(h.modality)
                    if h.modality
                    else taxonomy_pb2.MODALITY_UNSPECIFIED
                ),
            )
        )
    if decision.statement is not None:
        msg.statement_of_reasons.CopyFrom(statement_to_proto(decision.statement, msg.decision_id))
    ctx = decision.context
    inputs = msg.policy_inputs
    inputs.locale = ctx.locale
    inputs.modalities.extend(modality_to_proto(m) for m in decision.modalities)
    for category, u in sorted(ctx.uncertainty.items(), key=lambda kv: kv[0].value):
        inputs.uncertainty.append(
            decision_pb2.CategoryUncertainty(category=category.proto, uncertainty=u)
        )
    for m in decision.hash_matches:
        inputs.hash_matches.append(
            decision_pb2.PolicyHashMatch(
                modality=modality_to_proto(m.modality),
                part_id=m.part_id,
                category=m.category.proto if m.category else taxonomy_pb2.CATEGORY_UNSPECIFIED,
                match=classifier_pb2.HashMatch(
                    bank=m.bank, distance=m.distance, entry_id=m.entry_id
                ),
            )
        )


@dataclass(frozen=True)
class RecordedItem:
    """What a recorded decision says the policy saw, ready for decide()."""

    content_id: str
    tenant: str
    surface: str
    fused: list[Score]
    missing: list[MissingSignal]
    context: PolicyContext


def recorded_inputs(msg: decision_pb2.ModerationDecision) -> RecordedItem:
    """The inputs of a recorded decision. Raises ValueError on enum values this version does
    not know."""
    inputs = msg.policy_inputs
    context = PolicyContext(
        consistency=[
            ConsistencySignal(
                s.name,
                float(s.value),
                tuple(modality_from_proto(m) for m in s.modalities if m),
                s.detail,
            )
            for s in msg.consistency
        ],
        hash_matches=[
            HashMatch(
                m.match.bank,
                modality_from_proto(m.modality),
                m.part_id,
                Category.from_proto(m.category) if m.category else None,
                m.match.entry_id,
                int(m.match.distance),
            )
            for m in inputs.hash_matches
        ],
        uncertainty={
            Category.from_proto(u.category): float(u.uncertainty) for u in inputs.uncertainty
        },
        modalities=[modality_from_proto(m) for m in inputs.modalities],
        locale=inputs.locale,
    )
    return RecordedItem(
        content_id=msg.content_id,
        tenant=msg.tenant,
        surface=msg.surface,
        fused=[score_from_proto(s) for s in msg.categories],
        missing=[
            MissingSignal(modality_from_proto(m.modality), m.reason) for m in msg.missing_signals
        ],
        context=context,
    )
