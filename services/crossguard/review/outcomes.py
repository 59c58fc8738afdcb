"""Closing the loop: the final ModerationDecision and the feedback record a verdict produces.

The final decision replaces the one under review for the same content id: a new deterministic
decision id per task (a retry yields the same record), decided_by="review", final=True, and
supersedes_decision_id naming the decision it replaces.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crossguard.core.proto_convert import modality_from_proto
from crossguard.core.results import Modality
from crossguard.core.taxonomy import Category
from crossguard.policy.model import Policy
from crossguard.policy.proto import statement_to_proto
from crossguard.policy.sor import AUTOMATED_PARTIALLY, statement_for_review
from crossguard.v1 import decision_pb2, review_pb2, taxonomy_pb2

REVIEW_NAMESPACE = uuid.UUID("0b9c8a57-8f3e-4f0e-9d52-6a9a1f4c2e77")

ACTIONS: dict[str, taxonomy_pb2.Action.ValueType] = {
    "allow": taxonomy_pb2.ACTION_ALLOW,
    "block": taxonomy_pb2.ACTION_BLOCK,
}
ACTION_NAMES: dict[int, str] = {
    taxonomy_pb2.ACTION_ALLOW: "allow",
    taxonomy_pb2.ACTION_ESCALATE: "escalate",
    taxonomy_pb2.ACTION_BLOCK: "block",
}


@dataclass(frozen=True)
class Resolution:
    """How a task closed: the action, the confirmed categories and how it was reached."""

    action: str
    categories: list[str]
    verdicts: int
    unanimous: bool
    lead_decided: bool


def final_decision_id(task_id: str) -> str:
    return str(uuid.uuid5(REVIEW_NAMESPACE, f"final\n{task_id}"))


def _ts(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def _modalities(decision: decision_pb2.ModerationDecision) -> list[Modality]:
    values = list(decision.policy_inputs.modalities) or [e.modality for e in decision.evidence]
    out: list[Modality] = []
    for v in values:
        try:
            m = modality_from_proto(v)
        except ValueError:
            continue
        if m not in out:
            out.append(m)
    return out


def statement(
    policy: Policy,
    decision: decision_pb2.ModerationDecision,
    resolution: Resolution,
) -> decision_pb2.StatementOfReasons:
    """The DSA statement of reasons for a human decision (the policy workstream's builder):
    detected by automated means, decided by people with the automated analysis at hand."""
    who = "a lead" if resolution.lead_decided else f"{resolution.verdicts} reviewer(s)"
    facts = (
        f"Human review by {who} decided {resolution.action}"
        + (f" for {', '.join(resolution.categories)}" if resolution.categories else "")
        + f", after automated decision {decision.supersedes_decision_id} under policy "
        f"{decision.policy_version or 'unknown'}."
    )
    built = statement_for_review(
        policy.sor(decision.tenant, decision.surface),
        action=resolution.action,
        categories=[Category(c) for c in resolution.categories],
        modalities=_modalities(decision),
        facts=facts,
        automated_decision=AUTOMATED_PARTIALLY,
    )
    return statement_to_proto(built, decision.decision_id)


def final_decision(
    task_id: str,
    under_review: decision_pb2.ModerationDecision,
    resolution: Resolution,
    now: datetime,
    policy: Policy | None = None,
) -> decision_pb2.ModerationDecision:
    out = decision_pb2.ModerationDecision()
    out.CopyFrom(under_review)
    out.decision_id = final_decision_id(task_id)
    out.action = ACTIONS[resolution.action]
    out.decided_by = "review"
    out.final = True
    out.supersedes_decision_id = under_review.decision_id
    out.decided_at.CopyFrom(_ts(now))
    out.escalation.escalated = False
    who = "a lead" if resolution.lead_decided else f"{resolution.verdicts} reviewer(s)"
    cats = f" ({', '.join(resolution.categories)})" if resolution.categories else ""
    agreement = ", unanimous" if resolution.unanimous else ""
    out.reasons.append(f"human review: {resolution.action}{cats} by {who}{agreement}")
    out.applied_action = out.action
    out.ClearField("statement_of_reasons")
    if policy is not None and resolution.action != "allow":
        out.statement_of_reasons.CopyFrom(statement(policy, out, resolution))
    return out


def feedback(
    task_id: str,
    under_review: decision_pb2.ModerationDecision,
    resolution: Resolution,
    appeal_of: str | None,
    now: datetime,
) -> review_pb2.ReviewFeedback:
    return review_pb2.ReviewFeedback(
        task_id=task_id,
        content_id=under_review.content_id,
        automated=under_review,
        action=ACTIONS[resolution.action],
        categories=[Category.parse(c).proto for c in resolution.categories],
        verdicts=resolution.verdicts,
        unanimous=resolution.unanimous,
        lead_decided=resolution.lead_decided,
        appeal_of_task_id=appeal_of or "",
        decided_at=_ts(now),
    )


def parse_categories(names: Sequence[str]) -> list[str]:
    """Canonical names, deduplicated, in taxonomy order; ValueError on an unknown one."""
    wanted = {Category.parse(n.strip()).value for n in names if n.strip()}
    return [c.value for c in Category if c.value in wanted]
