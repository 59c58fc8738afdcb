"""Pipeline metrics through an in-memory OpenTelemetry reader."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.process import Processor
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import content_pb2

pytestmark = pytest.mark.unit


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    value = getattr(p, "value", None)
                    if value is None:
                        value = p.count  # type: ignore[union-attr]
                    out.setdefault(metric.name, []).append((dict(p.attributes or {}), value))
    return out


async def test_counters_histograms_and_lag_gauge() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = PipelineMetrics(provider.get_meter("test"))
    proc = Processor(PipelineSettings(), metrics=metrics)  # no endpoints: not_configured
    item = content_pb2.ContentItem(id="m1", parts=[content_pb2.ContentPart(text="hi")])
    await proc.process(item.SerializeToString())
    await proc.process(item.SerializeToString())  # duplicate
    await proc.process(b"\xff garbage")
    metrics.lag[("content", 0)] = 7

    got = points(reader)
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
    provider.shutdown()
