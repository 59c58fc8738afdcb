"""Decision and review-task assembly: a policy Decision plus the signals it was made on →
the ModerationDecision and ReviewTask messages, with deterministic ids."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from crossguard.core.proto_convert import evidence_to_proto, modality_to_proto, score_to_proto
from crossguard.core.results import ClassifierResult
from crossguard.pipeline.settings import DEFAULT_TRANSCRIPT_MAX_CHARS
from crossguard.pipeline.signals import Consistency
from crossguard.pipeline.transcripts import capped_transcripts
from crossguard.pipeline.validate import ValidItem
from crossguard.policy import Decision
from crossguard.policy.proto import action_to_proto, fill_policy_fields
from crossguard.v1 import classifier_pb2, consistency_pb2, content_pb2, decision_pb2, review_pb2

# Namespace for deterministic decision and review-task ids.
DECISION_NAMESPACE = uuid.UUID("6f1c7c1e-5b0e-4c1a-9a43-2f3f1b8f0c11")


def decision_id(content_id: str, policy_version: str, content_sha256: str) -> str:
    """Deterministic: the same item under the same policy always gets the same id."""
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{content_id}\n{policy_version}\n{content_sha256}"))


def review_task_id(decision_id_: str) -> str:
    return str(uuid.uuid5(DECISION_NAMESPACE, f"review\n{decision_id_}"))


def timestamp(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def modality_evidence(
    result: ClassifierResult, transcript_max_chars: int
) -> decision_pb2.ModalityEvidence | None:
    """A modality's evidence, with its audio parts' capped transcripts (even when nothing
    was flagged: a reviewer of an escalated item reads what was said)."""
    transcripts = capped_transcripts(result.transcripts, result.evidence, transcript_max_chars)
    if not result.evidence and not transcripts:
        return None
    out = decision_pb2.ModalityEvidence(modality=modality_to_proto(result.modality))
    for e in result.evidence:
        evidence_to_proto(e, out.evidence.add())
    out.transcripts.extend(transcripts)
    return out


def build_decision(
    valid: ValidItem,
    decision: Decision,
    results: Sequence[ClassifierResult],
    consistency: Consistency | None,
    now: datetime,
    *,
    transcript_max_chars: int = DEFAULT_TRANSCRIPT_MAX_CHARS,
) -> decision_pb2.ModerationDecision:
    """`transcript_max_chars`: the audio transcripts' cap (CROSSGUARD_TRANSCRIPT_MAX_CHARS)."""
    item = valid.item
    msg = decision_pb2.ModerationDecision(
        decision_id=decision_id(item.id, decision.policy_version, valid.content_sha256),
        content_id=item.id,
        tenant=item.tenant,
        surface=item.surface,
        action=action_to_proto(decision.action),
        reasons=decision.reasons,
        policy_version=decision.policy_version,
        decided_by="pipeline",
        final=not decision.escalation.escalated,
    )
    msg.categories.extend(score_to_proto(s) for s in decision.categories)
    for result in results:
        evidence = modality_evidence(result, transcript_max_chars)
        if evidence is not None:
            msg.evidence.append(evidence)
    for m in decision.missing:
        msg.missing_signals.append(
            decision_pb2.MissingSignal(
                modality=modality_to_proto(m.modality), reason=m.reason, fallback=m.fallback
            )
        )
    model_lists = [r.models for r in results]
    if consistency is not None:
        model_lists.append(consistency.models)
        msg.consistency.extend(
            consistency_pb2.ConsistencySignal(
                name=s.name,
                value=s.value,
                modalities=[modality_to_proto(m) for m in s.modalities],
                detail=s.detail,
            )
            for s in consistency.context.consistency
        )
    seen: set[tuple[str, str]] = set()
    for models in model_lists:
        for name, version in models:
            if (name, version) not in seen:
                seen.add((name, version))
                msg.models.append(classifier_pb2.ModelInfo(name=name, version=version))
    esc = decision.escalation
    msg.escalation.CopyFrom(
        decision_pb2.Escalation(
            escalated=esc.escalated,
            rule=esc.rule,
            priority=esc.priority,
            required_verdicts=esc.required_verdicts,
        )
    )
    if item.HasField("created_at"):
        msg.content_created_at.CopyFrom(item.created_at)
    msg.decided_at.CopyFrom(timestamp(now))
    fill_policy_fields(msg, decision)
    return msg


def build_review_task(
    item: content_pb2.ContentItem,
    decision: decision_pb2.ModerationDecision,
    sla_minutes: int,
) -> review_pb2.ReviewTask:
    """Created at the decision's time, so that the task rebuilt for a replayed decision is
    the same record as the first one."""
    created = decision.decided_at.ToDatetime()
    return review_pb2.ReviewTask(
        task_id=review_task_id(decision.decision_id),
        item=item,
        decision=decision,
        priority=decision.escalation.priority,
        created_at=decision.decided_at,
        sla_deadline=timestamp(created + timedelta(minutes=sla_minutes)),
        required_verdicts=decision.escalation.required_verdicts,
    )
