"""Pipeline metrics (OpenTelemetry meter "crossguard.pipeline").

- crossguard.pipeline.items            counter  {outcome: decision|dlq|duplicate|retry}
                                        (rate = items/s)
- crossguard.pipeline.stage.duration   histogram ms {stage: validate|classify|consistency|decide|
                                        emit|total, modality}
- crossguard.pipeline.decisions        counter  {action}
- crossguard.pipeline.decision.categories counter {action, category}: categories that fired
- crossguard.pipeline.dlq              counter  {code}
- crossguard.pipeline.missing_signals  counter  {modality, reason}
- crossguard.pipeline.consumer.lag     observable gauge {topic, partition}: high watermark minus
  the consumer position. Against tansu the high watermark is wrong after multi-record batches,
  so the figure is only meaningful with small producer batches (or on a real Kafka).
"""

from __future__ import annotations

from collections.abc import Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation


class PipelineMetrics:
    def __init__(self, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("crossguard.pipeline")
        self.items = meter.create_counter(
            "crossguard.pipeline.items", unit="{item}", description="Items consumed, by outcome"
        )
        self.stage_duration = meter.create_histogram(
            "crossguard.pipeline.stage.duration",
            unit="ms",
            description="Latency per pipeline stage",
        )
        self.decisions = meter.create_counter(
            "crossguard.pipeline.decisions", unit="{decision}", description="Decisions by action"
        )
        self.decision_categories = meter.create_counter(
            "crossguard.pipeline.decision.categories",
            unit="{decision}",
            description="Decisions by action and the category that fired a rule",
        )
        self.dlq = meter.create_counter(
            "crossguard.pipeline.dlq", unit="{item}", description="Items sent to the DLQ"
        )
        self.missing = meter.create_counter(
            "crossguard.pipeline.missing_signals",
            unit="{signal}",
            description="Signals missing from decisions, by modality and reason",
        )
        # (topic, partition) → lag; updated by the worker, read by the gauge callback.
        self.lag: dict[tuple[str, int], int] = {}
        meter.create_observable_gauge(
            "crossguard.pipeline.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{record}",
            description="High watermark minus consumer position per partition",
        )

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        for (topic, partition), lag in list(self.lag.items()):
            yield Observation(lag, {"topic": topic, "partition": partition})
