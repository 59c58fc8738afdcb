"""One trace per item, spanning the worker and the classifier: an item published with a
traceparent header through the real broker, consumed and processed in-process, with the text
service running in-process (GrpcServer) and every span captured by an InMemorySpanExporter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import GrpcServerSettings, KafkaSettings, ModelSettings
from crossguard.core.telemetry import setup_telemetry
from crossguard.core.topics import Topics
from crossguard.pipeline.io import headers_dict, iter_records, publish_raw
from crossguard.pipeline.process import Processor
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import content_pb2, taxonomy_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        setup_telemetry("crossguard-test")  # installs the global provider once per process
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
async def text_port(model_repository: ModelRepository) -> AsyncIterator[int]:
    from crossguard.text.server import build_model, build_server
    from crossguard.text.service import TextClassifier
    from crossguard.text.settings import TextServerSettings

    settings = TextServerSettings(
        grpc=GrpcServerSettings(host="127.0.0.1", port=0, grace_seconds=0.5),
        model=ModelSettings(
            model_repository=Path(model_repository.root), onnx_providers="CPUExecutionProvider"
        ),
    )
    classifier = TextClassifier(build_model(settings), settings.text)
    await classifier.start()
    server = build_server(classifier, settings)
    port = await server.start()
    yield port
    await server.stop(0.5)


def trace_hex(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


async def test_one_trace_per_item_across_worker_and_classifier(
    kafka: KafkaSettings, text_port: int, spans: InMemorySpanExporter
) -> None:
    items = [
        content_pb2.ContentItem(
            id=f"e-{i}",
            tenant="acme",
            surface="comment",
            parts=[content_pb2.ContentPart(text=f"hello there number {i}")],
        )
        for i in range(2)
    ]
    traced = [("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN}-01".encode())]
    await publish_raw(
        kafka.bootstrap_servers,
        [
            (b"e-0", items[0].SerializeToString(), traced),
            (b"e-1", items[1].SerializeToString(), []),  # no context: a new root trace
        ],
        kafka=kafka,
    )

    proc = Processor(PipelineSettings(text_endpoint=f"127.0.0.1:{text_port}"))
    outcomes = {}
    topic = Topics.from_settings(kafka).content
    async for rec in iter_records(kafka.bootstrap_servers, topic, kafka=kafka):
        out = await proc.process(rec.value, list(rec.headers), key=rec.key)
        outcomes[out.content_id] = out
        if len(outcomes) == 2:
            break
    await proc.close()

    d0 = outcomes["e-0"]
    assert d0.decision is not None
    assert not d0.decision.missing_signals, "the text classifier answered"
    assert d0.decision.action != taxonomy_pb2.ACTION_UNSPECIFIED
    # The decision record carries the item's trace onward.
    tp = headers_dict(d0.records[0].headers)["traceparent"]
    assert tp.split("-")[1] == TRACE_ID

    # The server span may end just after the client has its response.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if sum(s.kind is SpanKind.SERVER for s in spans.get_finished_spans()) >= 2:
            break
        await asyncio.sleep(0.05)
    finished = spans.get_finished_spans()
    in_trace = [s for s in finished if trace_hex(s) == TRACE_ID]
    by_name = {s.name: s for s in in_trace}

    consume = by_name["consume"]
    assert consume.parent is not None and format(consume.parent.span_id, "016x") == PARENT_SPAN
    classify = by_name["classify text"]
    decide = by_name["decide"]
    assert classify.parent is not None and classify.parent.span_id == consume.context.span_id
    assert decide.parent is not None and decide.parent.span_id == consume.context.span_id
    client = [s for s in in_trace if s.kind is SpanKind.CLIENT]
    server = [s for s in in_trace if s.kind is SpanKind.SERVER]
    assert client and server, [(s.name, s.kind) for s in in_trace]
    # The worker batches its classifier calls (ClassifyBatch), in the item's trace.
    assert server[0].name.endswith(
        ("ClassifierService/Classify", "ClassifierService/ClassifyBatch")
    )
    assert server[0].parent is not None
    assert server[0].parent.span_id == client[0].context.span_id
    assert client[0].parent is not None
    parent = client[0].parent.span_id
    batch = by_name.get("classify batch")  # the batching client's span, under the item's
    if batch is not None and batch.parent is not None and parent == batch.context.span_id:
        parent = batch.parent.span_id
    assert parent == classify.context.span_id

    # The untraced item got its own, different trace, also spanning the classifier.
    consumes = [s for s in finished if s.name == "consume"]
    other = [
        s for s in consumes if s.attributes and s.attributes.get("crossguard.content_id") == "e-1"
    ]
    assert len(other) == 1
    other_trace = trace_hex(other[0])
    assert other_trace != TRACE_ID
    assert any(s.kind is SpanKind.SERVER and trace_hex(s) == other_trace for s in finished), (
        "classifier server span joins the untraced item's new trace"
    )
