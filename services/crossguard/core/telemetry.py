"""OpenTelemetry setup and context propagation through Kafka headers and gRPC metadata.

Configured by the standard variables: OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER ("otlp", "console" or "none"; default "otlp" when
OTEL_EXPORTER_OTLP_ENDPOINT is set, else "none"), OTEL_EXPORTER_OTLP_ENDPOINT and friends, and
OTEL_METRIC_EXPORT_INTERVAL. Trace ids exist (and reach the logs) even when nothing is exported.
"""

from __future__ import annotations

import os
from collections.abc import MutableSequence, Sequence

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

KafkaHeaders = Sequence[tuple[str, bytes]]

_configured = False


def _exporter_choice(var: str) -> str:
    default = "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    return os.environ.get(var, default).strip().lower()


def setup_telemetry(service_name: str) -> None:
    """Install global tracer and meter providers once per process (later calls do nothing)."""
    global _configured
    if _configured:
        return
    resource = Resource.create({SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)})
    tracer_provider = TracerProvider(resource=resource)
    traces = _exporter_choice("OTEL_TRACES_EXPORTER")
    if traces == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    elif traces == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))

    readers: list[MetricReader] = []
    metrics_choice = _exporter_choice("OTEL_METRICS_EXPORTER")
    if metrics_choice == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    elif metrics_choice == "console":
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _configured = True


def shutdown_telemetry() -> None:
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
    meter_provider = metrics.get_meter_provider()
    if isinstance(meter_provider, MeterProvider):
        meter_provider.shutdown()


class _KafkaHeaderGetter(Getter[KafkaHeaders]):
    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        values = [v.decode("latin-1") for k, v in carrier if k.lower() == key.lower() and v]
        return values or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [k for k, _ in carrier]


class _KafkaHeaderSetter(Setter[MutableSequence[tuple[str, bytes]]]):
    def set(self, carrier: MutableSequence[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


def inject_kafka_headers(
    headers: MutableSequence[tuple[str, bytes]] | None = None,
    ctx: context.Context | None = None,
) -> list[tuple[str, bytes]]:
    """Headers carrying the W3C traceparent of `ctx` (default: current context)."""
    out: list[tuple[str, bytes]] = list(headers or [])
    propagate.inject(out, context=ctx, setter=_KafkaHeaderSetter())
    return out


def extract_kafka_headers(headers: KafkaHeaders | None) -> context.Context:
    """The trace context carried in a record's headers (empty context when none)."""
    return propagate.extract(list(headers or []), getter=_KafkaHeaderGetter())
