"""Pipeline metrics through an in-memory OpenTelemetry reader."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.process import Processor
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import content_pb2

if TYPE_CHECKING:
    from conftest import MetricsCapture

pytestmark = pytest.mark.unit


async def test_counters_histograms_and_lag_gauge(
    metrics_capture: Callable[[], MetricsCapture],
) -> None:
    capture = metrics_capture()
    metrics = PipelineMetrics(capture.meter())
    proc = Processor(PipelineSettings(), metrics=metrics)  # no endpoints: not_configured
    item = content_pb2.ContentItem(id="m1", parts=[content_pb2.ContentPart(text="hi")])
    await proc.process(item.SerializeToString())
    await proc.process(item.SerializeToString())  # duplicate
    await proc.process(b"\xff garbage")
    metrics.lag[("content", 0)] = 7

    got = capture.points()
    items = {a["outcome"]: v for a, v in got["crossguard.pipeline.items"]}
    assert items == {"decision": 1, "duplicate": 1, "dlq": 1}
    assert got["crossguard.pipeline.decisions"] == [({"action": "escalate"}, 1)]
    assert got["crossguard.pipeline.dlq"] == [({"code": "malformed_protobuf"}, 1)]
    assert got["crossguard.pipeline.missing_signals"] == [
        ({"modality": "text", "reason": "not_configured"}, 1)
    ]
    stages = {a["stage"] for a, _ in got["crossguard.pipeline.stage.duration"]}
    assert {"validate", "decide", "total"} <= stages
    assert got["crossguard.pipeline.consumer.lag"] == [({"topic": "content", "partition": 0}, 7)]
