"""Threshold suggestions from (score, confirmed) pairs: pure functions, no I/O."""

from __future__ import annotations

import pytest

from crossguard.review.calibrate import point, suggest

pytestmark = pytest.mark.unit


def test_point_counts_precision_and_recall() -> None:
    samples = [(0.2, False), (0.4, False), (0.5, True), (0.7, False), (0.8, True), (0.9, True)]
    p = point(samples, 0.5)
    assert (p.precision, p.recall, p.flagged) == (3 / 4, 1.0, 4)
    assert point(samples, 0.95).precision is None


def test_suggestions_meet_their_targets_and_show_the_current_thresholds() -> None:
    # Harm above 0.6 except one miss at 0.45; one false alarm at 0.65.
    samples = [(s / 100, (s >= 60 and s != 65) or s == 45) for s in range(30, 100, 5)]
    s = suggest("violence", samples, target_recall=0.9, target_precision=1.0, current=(0.5, 0.9))
    assert s.escalate is not None and point(samples, s.escalate).recall >= 0.9
    assert s.block == 0.7  # lowest threshold with no false block
    assert s.escalate <= 0.45  # keeps the early positive within review
    thresholds = [p.threshold for p in s.table]
    assert {0.5, 0.9, s.escalate, s.block} <= set(thresholds)
    assert thresholds == sorted(thresholds)
