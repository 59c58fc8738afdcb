"""Threshold suggestions from human verdicts (`crossguard calibrate`): it suggests, never
applies.

For each category, the reviewed tasks' automated scores are labels' evidence: a task is a
positive for a category when its final decision blocked it for that category (or for a
sub-category: "hate/threatening" confirms "hate"). Two suggestions per category:

- escalate: the highest threshold that still sends `target_recall` of the confirmed harms to
  review (missing harm is the costly error at this step);
- block: the lowest threshold whose automatic blocks would have been right `target_precision`
  of the time (a wrong block is the costly error there).

Each suggestion comes with a precision/recall table at nearby thresholds and at the policy's
current one. Only escalated content is reviewed, so scores cover the band between the
escalate and block thresholds best: suggestions outside it rest on few points (the table shows
the counts).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Engine

from crossguard.core.taxonomy import PARENT, Category
from crossguard.review.schema import task_scores, tasks


@dataclass(frozen=True)
class Point:
    threshold: float
    precision: float | None  # None: nothing at or above the threshold
    recall: float
    flagged: int


@dataclass
class Suggestion:
    category: str
    samples: int
    positives: int
    escalate: float | None
    block: float | None
    current_escalate: float | None = None
    current_block: float | None = None
    table: list[Point] = field(default_factory=list)


def load_labels(engine: Engine) -> dict[str, list[tuple[float, bool]]]:
    """Category → (automated score, confirmed by humans) for every decided task."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                task_scores.c.category,
                task_scores.c.score,
                tasks.c.final_action,
                tasks.c.final_categories,
            )
            .select_from(task_scores.join(tasks, tasks.c.task_id == task_scores.c.task_id))
            .where(tasks.c.state == "decided")
        ).all()
    out: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for category, score, action, confirmed_names in rows:
        confirmed: set[str] = set()
        if action == "block":
            for name in (confirmed_names or "").split(","):
                if not name:
                    continue
                confirmed.add(name)
                parent = PARENT.get(Category(name))
                if parent is not None:
                    confirmed.add(parent.value)
        out[category].append((float(score), category in confirmed))
    return dict(out)


def point(samples: list[tuple[float, bool]], threshold: float) -> Point:
    positives = sum(1 for _, y in samples if y)
    flagged = [y for s, y in samples if s >= threshold]
    hits = sum(1 for y in flagged if y)
    precision = hits / len(flagged) if flagged else None
    recall = hits / positives if positives else 0.0
    return Point(threshold, precision, recall, len(flagged))


def suggest(
    category: str,
    samples: list[tuple[float, bool]],
    *,
    target_recall: float,
    target_precision: float,
    current: tuple[float | None, float | None] = (None, None),
) -> Suggestion:
    positives = sum(1 for _, y in samples if y)
    candidates = sorted({round(s, 4) for s, _ in samples})
    escalate = block = None
    for t in candidates:  # ascending: keep the last (highest) that keeps recall
        if point(samples, t).recall >= target_recall:
            escalate = t
    for t in candidates:  # ascending: the first (lowest) precise enough
        p = point(samples, t)
        if p.precision is not None and p.precision >= target_precision and p.flagged >= 1:
            block = t
            break
    shown = {round(x / 10, 1) for x in range(1, 10)}
    shown |= {t for t in (escalate, block, *current) if t is not None}
    return Suggestion(
        category=category,
        samples=len(samples),
        positives=positives,
        escalate=escalate,
        block=block,
        current_escalate=current[0],
        current_block=current[1],
        table=[point(samples, t) for t in sorted(shown)],
    )


def calibrate(
    engine: Engine,
    *,
    current: dict[str, tuple[float | None, float | None]] | None = None,
    target_recall: float = 0.95,
    target_precision: float = 0.95,
    min_samples: int = 20,
) -> tuple[list[Suggestion], list[tuple[str, int]]]:
    """Suggestions for categories with at least `min_samples` reviewed tasks and both labels;
    and the (category, samples) pairs skipped for too little data."""
    current = current or {}
    suggestions: list[Suggestion] = []
    skipped: list[tuple[str, int]] = []
    for category, samples in sorted(load_labels(engine).items()):
        labels = {y for _, y in samples}
        if len(samples) < min_samples or len(labels) < 2:
            skipped.append((category, len(samples)))
            continue
        suggestions.append(
            suggest(
                category,
                samples,
                target_recall=target_recall,
                target_precision=target_precision,
                current=current.get(category, (None, None)),
            )
        )
    return suggestions, skipped
