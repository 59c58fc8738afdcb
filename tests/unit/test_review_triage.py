"""Queue order and evidence display: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crossguard.core.taxonomy import Category
from crossguard.review.evidence import highlight
from crossguard.review.priority import rank_key, shown_priority, triage, uncertainty
from crossguard.review.store import strip_inline_media
from crossguard.v1 import content_pb2, decision_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_uncertainty_peaks_at_one_half() -> None:
    assert uncertainty(0.5) == 1.0
    assert uncertainty(0.0) == uncertainty(1.0) == 0.0
    assert uncertainty(0.75) == pytest.approx(0.5)


def test_triage_ignores_profanity_and_orders_flags_by_severity() -> None:
    d = decision_pb2.ModerationDecision()
    for cat, score, sev in (
        (Category.PROFANITY, 0.99, 3),
        (Category.HARASSMENT, 0.7, 2),
        (Category.VIOLENCE, 0.9, 3),
        (Category.SPAM, 0.1, 0),
    ):
        d.categories.append(
            taxonomy_pb2.CategoryScore(category=cat.proto, score=score, severity=sev)
        )
    t = triage(d)
    assert t.severity == 3 and t.categories == ["violence", "harassment"]
    assert t.uncertainty == pytest.approx(uncertainty(0.9))
    assert t.scores["profanity"] == (pytest.approx(0.99), 3)


def test_severe_uncertain_tasks_rank_ahead_and_order_never_flips() -> None:
    due = T0 + timedelta(hours=24)
    severe = rank_key(T0, due, 3, 1.0)
    mild = rank_key(T0 - timedelta(hours=6), due - timedelta(hours=6), 1, 0.0)
    assert severe < mild  # newer, but severe and uncertain
    assert shown_priority(T0, severe, T0) == 0.0
    assert shown_priority(T0, severe, datetime.fromtimestamp(severe, UTC)) == pytest.approx(1.0)


def test_highlight_splits_text_at_clamped_non_overlapping_spans() -> None:
    text = "abcdefghij"
    segs = highlight(text, [(2, 5, "hate"), (4, 7, "violence"), (8, 99, "spam"), (9, 3, "x")])
    assert "".join(s.text for s in segs) == text
    assert [(s.text, s.category) for s in segs] == [
        ("ab", ""),
        ("cde", "hate"),
        ("fg", "violence"),
        ("h", ""),
        ("ij", "spam"),
    ]


def test_inline_media_bytes_are_never_kept() -> None:
    item = content_pb2.ContentItem(id="c")
    item.parts.append(
        content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png", inline_data=b"x"))
    )
    item.parts.append(
        content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png", uri="s3://b/k"))
    )
    kept = strip_inline_media(item)
    assert not kept.parts[0].media.inline_data and kept.parts[0].media.mime_type == "image/png"
    assert kept.parts[1].media.uri == "s3://b/k"
    assert item.parts[0].media.inline_data == b"x"  # the original is untouched
