"""Classifier metrics through an in-memory OpenTelemetry reader (no I/O)."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from crossguard.core import classifier_metrics
from crossguard.core.classifier_metrics import ClassifierMetrics, outcome_of
from crossguard.core.errors import LimitExceeded, ModelError, NotReady, Overloaded

if TYPE_CHECKING:
    from conftest import MetricsCapture

pytestmark = pytest.mark.unit


def test_outcome_of_each_kind_of_ending() -> None:
    assert outcome_of(None) == "ok"
    assert outcome_of(LimitExceeded("too long")) == "invalid"
    assert outcome_of(Overloaded("full")) == "overloaded"
    assert outcome_of(NotReady("loading")) == "not_ready"
    assert outcome_of(ModelError("model repository entry is incomplete")) == "model_error"
    assert outcome_of(asyncio.CancelledError()) == "cancelled"
    assert outcome_of(RuntimeError("bug")) == "error"


def test_requests_batches_and_queue_depth(metrics_capture: Callable[[], MetricsCapture]) -> None:
    capture = metrics_capture()
    metrics = ClassifierMetrics("text", capture.meter())
    metrics.request(0.02)
    metrics.request(0.03)
    metrics.request(0.001, LimitExceeded("too long"))
    metrics.batch(8, 0.04)
    metrics.batch(2, 0.01)
    depth = [5]
    metrics.watch_queue(lambda: depth[0])

    got = capture.points()
    requests = {a["outcome"]: n for a, n in got["crossguard.classifier.duration"]}
    assert requests == {"ok": 2, "invalid": 1}
    assert all(a["modality"] == "text" for a, _ in got["crossguard.classifier.duration"])
    assert got["crossguard.classifier.batch.size"] == [({"modality": "text"}, 2)]
    assert got["crossguard.classifier.batch.size.sum"] == [({"modality": "text"}, 10)]
    assert got["crossguard.classifier.batch.duration.sum"][0][1] == pytest.approx(0.05)
    assert got["crossguard.classifier.queue.depth"] == [({"modality": "text"}, 5)]


def test_no_queue_watched_reports_no_depth(metrics_capture: Callable[[], MetricsCapture]) -> None:
    capture = metrics_capture()
    ClassifierMetrics("image", capture.meter()).request(0.5)
    got = capture.points()
    assert "crossguard.classifier.queue.depth" not in got
    assert got["crossguard.classifier.duration"] == [({"modality": "image", "outcome": "ok"}, 1)]


def test_instruments_are_shared_and_queues_summed_per_modality(
    metrics_capture: Callable[[], MetricsCapture],
) -> None:
    capture = metrics_capture()
    meter = capture.meter()
    first, second, image = (ClassifierMetrics(m, meter) for m in ("text", "text", "image"))
    first.watch_queue(lambda: 2)
    second.watch_queue(lambda: 3)
    image.watch_queue(lambda: 7)
    first.request(0.1)
    second.request(0.2)
    got = capture.points()
    assert sorted(n for _, n in got["crossguard.classifier.queue.depth"]) == [5, 7]
    assert got["crossguard.classifier.duration"] == [({"modality": "text", "outcome": "ok"}, 2)]

    second.watch_queue(None)  # a classifier that closed
    del image  # one that was dropped without closing
    gc.collect()
    assert capture.points()["crossguard.classifier.queue.depth"] == [({"modality": "text"}, 2)]


def test_a_collection_does_not_wait_for_instrument_creation(
    metrics_capture: Callable[[], MetricsCapture],
) -> None:
    # Creating instruments holds the module lock and then takes the SDK's collection lock; a
    # collection (SDK lock held) that took the module lock in the gauge callback would
    # deadlock against it. The callback must complete while the module lock is held.
    capture = metrics_capture()
    ClassifierMetrics("text", capture.meter()).watch_queue(lambda: 1)
    with classifier_metrics._lock:
        collection = threading.Thread(target=capture.reader.get_metrics_data, daemon=True)
        collection.start()
        collection.join(timeout=30)  # a hang guard, not a timing assertion
        assert not collection.is_alive()
