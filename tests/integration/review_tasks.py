"""ReviewTask protos for the review tests (a plain builder, imported relatively)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, content_pb2, decision_pb2, review_pb2, taxonomy_pb2


def ts(dt: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(dt)
    return out


def make_task(
    n: int | str,
    *,
    scores: dict[str, tuple[float, int]] | None = None,
    text: str = "I will find you",
    created: datetime | None = None,
    required: int = 1,
    media_uri: str = "",
    inline_media: bytes = b"",
    rule: str = "category-threshold",
) -> review_pb2.ReviewTask:
    """A task for content `c-<n>` with the given category → (score, severity)."""
    scores = scores if scores is not None else {"harassment": (0.55, 1)}
    created = created or datetime.now(UTC)
    item = content_pb2.ContentItem(id=f"c-{n}", tenant="t1", surface="comment", author_id="a1")
    item.parts.append(content_pb2.ContentPart(part_id="caption", text=text))
    if media_uri or inline_media:
        media = content_pb2.Media(mime_type="image/png", sha256="")
        if media_uri:
            media.uri = media_uri
        else:
            media.inline_data = inline_media
        item.parts.append(content_pb2.ContentPart(part_id="image-0", media=media))
    decision = decision_pb2.ModerationDecision(
        decision_id=f"auto-{n}",
        content_id=item.id,
        tenant="t1",
        surface="comment",
        action=taxonomy_pb2.ACTION_ESCALATE,
        policy_version="default-test",
        decided_by="pipeline",
        final=False,
    )
    for name, (score, sev) in scores.items():
        decision.categories.append(
            taxonomy_pb2.CategoryScore(category=Category(name).proto, score=score, severity=sev)
        )
    decision.evidence.append(
        decision_pb2.ModalityEvidence(
            modality=taxonomy_pb2.MODALITY_TEXT,
            evidence=[
                classifier_pb2.Evidence(
                    part_id="caption",
                    category=Category(next(iter(scores), "harassment")).proto,
                    weight=0.4,
                    span=classifier_pb2.TextSpan(start=2, end=6, text=text[2:6]),
                )
            ],
        )
    )
    decision.models.append(classifier_pb2.ModelInfo(name="text-heads", version="3"))
    decision.escalation.CopyFrom(
        decision_pb2.Escalation(escalated=True, rule=rule, priority=0.5, required_verdicts=required)
    )
    return review_pb2.ReviewTask(
        task_id=f"task-{n}",
        item=item,
        decision=decision,
        priority=0.5,
        created_at=ts(created),
        required_verdicts=required,
    )
