"""Queue order: earliest virtual deadline first.

Each task has a real SLA deadline (`due_at`: created + the tightest SLA of its flagged
categories). Its place in the queue is a virtual deadline pulled earlier by severity and by
model uncertainty:

    rank = created + sla × (1 − boost),  boost = 0.5 × severity/3 + 0.3 × uncertainty

Earliest-deadline-first meets every SLA that any order can meet, and, unlike a "score × age"
product, the order of two tasks never flips as time passes, so it is a plain index scan
(`ORDER BY rank_key`) that row locks can skip through. The priority shown to reviewers is
the fraction of that virtual window already used: 1.0 means due now, above 1 overdue.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from crossguard.core.taxonomy import Category
from crossguard.v1 import decision_pb2

SEVERITY_WEIGHT = 0.5
UNCERTAINTY_WEIGHT = 0.3
# Informational categories never set a task's severity or SLA.
NOT_HARMS = frozenset({Category.PROFANITY.value})


@dataclass(frozen=True)
class Triage:
    severity: int
    uncertainty: float
    categories: list[str]  # flagged (severity > 0), most severe first
    scores: dict[str, tuple[float, int]]  # every category: (score, severity)


def uncertainty(score: float) -> float:
    """1 at score 0.5 (the model cannot tell), 0 at 0 or 1."""
    return max(0.0, 1.0 - abs(2.0 * score - 1.0))


def triage(decision: decision_pb2.ModerationDecision) -> Triage:
    scores: dict[str, tuple[float, int]] = {}
    for cs in decision.categories:
        try:
            name = Category.from_proto(cs.category).value
        except ValueError:
            continue
        score = min(1.0, max(0.0, float(cs.score)))
        prev = scores.get(name)
        if prev is None or score > prev[0]:
            scores[name] = (score, min(3, int(cs.severity)))
    harms = {k: v for k, v in scores.items() if k not in NOT_HARMS}
    flagged = sorted((k for k, v in harms.items() if v[1] > 0), key=lambda k: (-harms[k][1], k))
    severity = max((v[1] for v in harms.values()), default=0)
    top = max((v[0] for v in harms.values()), default=0.0)
    return Triage(severity, uncertainty(top), flagged, scores)


def boost(severity: int, uncertainty_: float) -> float:
    return SEVERITY_WEIGHT * severity / 3.0 + UNCERTAINTY_WEIGHT * uncertainty_


def sla_minutes(categories: Iterable[str], sla: dict[str, int], default: int) -> int:
    return min((sla.get(c, default) for c in categories), default=default)


def rank_key(created: datetime, due: datetime, severity: int, uncertainty_: float) -> float:
    """Epoch seconds of the virtual deadline (smaller = sooner)."""
    window = max(0.0, (due - created).total_seconds())
    return created.timestamp() + window * (1.0 - boost(severity, uncertainty_))


def shown_priority(created: datetime, rank: float, now: datetime) -> float:
    """Fraction of the virtual window used (1.0 = due now)."""
    window = rank - created.timestamp()
    if window <= 0:
        return 1.0 + max(0.0, (now - created).total_seconds()) / 60.0
    return (now - created).total_seconds() / window


def remaining(due: datetime, now: datetime) -> timedelta:
    return due - now
