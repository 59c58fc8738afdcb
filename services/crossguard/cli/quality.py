"""Quality of a replay: per-category AUC / AUPRC and precision / recall at the policy's
escalate threshold, over the categories that carry labels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.table import Table

from crossguard.cli.items import LabeledItem
from crossguard.core.taxonomy import Category
from crossguard.models.evaluate import average_precision, roc_auc
from crossguard.policy.loader import default_policy
from crossguard.v1 import decision_pb2


def quality_table(
    items: Sequence[LabeledItem], got: dict[str, decision_pb2.ModerationDecision]
) -> Table:
    policy = default_policy()
    table = Table(title=f"quality (policy {policy.version}, escalate thresholds)")
    for col in ("category", "n", "positives", "AUC", "AUPRC", "threshold", "precision", "recall"):
        table.add_column(col, justify="right" if col != "category" else "left")
    categories = sorted({c for li in items for c in li.labels}, key=lambda c: c.value)
    rows: list[tuple[str, list[int], list[float], float | None]] = []
    for category in categories:
        ys, ss = [], []
        for li in items:
            d = got.get(li.item.id)
            if d is None or category not in li.labels:
                continue
            ys.append(li.labels[category])
            ss.append(_score(d, category))
        rows.append((category.value, ys, ss, policy.thresholds(category).escalate))
    any_y, any_s = [], []
    for li in items:
        d = got.get(li.item.id)
        if d is None or not li.labels:
            continue
        any_y.append(int(any(li.labels.values())))
        any_s.append(max((_score(d, c) for c in li.labels), default=0.0))
    rows.append(("any", any_y, any_s, None))
    for name, ys, ss, threshold in rows:
        positives = sum(ys)
        both = 0 < positives < len(ys)
        y, s = np.asarray(ys), np.asarray(ss)
        auc = f"{roc_auc(y, s):.3f}" if both else "-"
        auprc = f"{average_precision(y, s):.3f}" if both else "-"
        if threshold is not None:
            flagged = [s >= threshold for s in ss]
            tp = sum(1 for f, y in zip(flagged, ys, strict=True) if f and y)
            precision = f"{tp / sum(flagged):.3f}" if any(flagged) else "-"
            recall = f"{tp / positives:.3f}" if positives else "-"
            shown = f"{threshold:.2f}"
        else:
            precision = recall = shown = "-"
        table.add_row(name, str(len(ys)), str(positives), auc, auprc, shown, precision, recall)
    return table


def _score(d: decision_pb2.ModerationDecision, category: Category) -> float:
    for c in d.categories:
        if c.category == category.proto:
            return float(c.score)
    return 0.0
