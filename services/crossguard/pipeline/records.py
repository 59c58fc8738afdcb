"""What the pipeline hands the worker: records to produce, and the outcome of one item."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from crossguard.v1 import decision_pb2, review_pb2

Headers = Sequence[tuple[str, bytes]]
TopicKind = Literal["decisions", "review", "dlq"]
OutcomeKind = Literal["decision", "dlq", "duplicate"]

DECISION_ID_HEADER = "crossguard-decision-id"


@dataclass(frozen=True)
class OutRecord:
    """One record to produce: `topic` is a logical name the worker maps to a real topic."""

    topic: TopicKind
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Outcome:
    """decision: decided now; duplicate: the stored first decision re-emitted; dlq: rejected."""

    kind: OutcomeKind
    content_id: str
    records: list[OutRecord] = field(default_factory=list)
    decision: decision_pb2.ModerationDecision | None = None
    review: review_pb2.ReviewTask | None = None
    dlq_code: str = ""
    dlq_reason: str = ""
