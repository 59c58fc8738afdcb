from __future__ import annotations

import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from crossguard.core.logging_setup import JsonFormatter
from crossguard.core.telemetry import extract_kafka_headers, inject_kafka_headers

pytestmark = pytest.mark.unit

_tracer = TracerProvider().get_tracer("test")


def test_trace_context_round_trips_through_kafka_headers() -> None:
    with _tracer.start_as_current_span("producer") as span:
        headers = inject_kafka_headers([("other", b"x")])
    assert ("other", b"x") in headers
    assert any(k == "traceparent" for k, _ in headers)
    ctx = extract_kafka_headers(headers)
    extracted = trace.get_current_span(ctx).get_span_context()
    assert extracted.trace_id == span.get_span_context().trace_id
    assert extracted.is_remote


def test_no_headers_extracts_an_empty_context() -> None:
    ctx = extract_kafka_headers(None)
    assert not trace.get_current_span(ctx).get_span_context().is_valid


def test_json_logs_carry_trace_id_and_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    record.content_id = "c-1"
    with _tracer.start_as_current_span("work") as span:
        line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "hello world"
    assert line["content_id"] == "c-1"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
