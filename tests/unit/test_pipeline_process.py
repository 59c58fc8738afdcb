"""Processor.process() without a broker or servers (the classifiers answered by FakeFanout):
DLQ records, missing signals, decision id determinism, dedupe and the first-decision store,
review tasks, trace headers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import faust
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RecordTooLargeError
from opentelemetry.trace import format_trace_id

from crossguard.core.media import MediaUnavailable
from crossguard.core.media.store import reference
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.pipeline.assemble import decision_id
from crossguard.pipeline.dead_letter import DLQ_ERROR_HEADER, DLQ_REASON_HEADER, DLQ_SOURCE_HEADER
from crossguard.pipeline.decision_table import TableDecisionStore
from crossguard.pipeline.dedupe import DecisionStoreUnavailable, MemoryDecisionStore, StoreFault
from crossguard.pipeline.fanout import Fanout
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.process import Processor, default_fanout
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import ValidItem
from crossguard.policy import MissingSignal, Policy, PolicyStore
from crossguard.v1 import content_pb2, decision_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit


class FakeFanout(Fanout):
    """Classifier calls answered from a table: content text → hate score."""

    def __init__(self, settings: PipelineSettings) -> None:
        real = default_fanout(settings, PipelineMetrics())
        super().__init__(settings, real.clients, real.metrics)
        self.calls = 0
        self.down: set[Modality] = set()

    async def classify_one(
        self, valid: ValidItem, modality: Modality, policy: Policy
    ) -> ClassifierResult | MissingSignal:
        self.calls += 1
        await asyncio.sleep(0)
        if modality in self.down:
            return MissingSignal(modality, "unavailable")
        if not self.endpoints.get(modality):
            return MissingSignal(modality, "not_configured")
        texts = " ".join(p.text for p in valid.parts_by_modality[modality])
        score = 0.95 if "awful" in texts else 0.6 if "bad" in texts else 0.05
        return ClassifierResult(
            modality, [Score(Category.HATE, score, 0)], models=[("fake-text", "1")]
        )


class FakeProcessor(Processor):
    """The real orchestrator over FakeFanout."""

    def __init__(self, settings: PipelineSettings, **kwargs: object) -> None:
        self.fake = FakeFanout(settings)
        super().__init__(settings, fanout=self.fake, **kwargs)  # type: ignore[arg-type]

    @property
    def calls(self) -> int:
        return self.fake.calls

    @property
    def down(self) -> set[Modality]:
        return self.fake.down


def settings(**kw: object) -> PipelineSettings:
    return PipelineSettings(text_endpoint="fake:1", **kw)  # type: ignore[arg-type]


def item(cid: str, *texts: str, tenant: str = "t") -> content_pb2.ContentItem:
    return content_pb2.ContentItem(
        id=cid,
        tenant=tenant,
        surface="comment",
        parts=[content_pb2.ContentPart(text=t) for t in texts],
    )


def hdrs(headers: list[tuple[str, bytes]]) -> dict[str, bytes]:
    return dict(headers)


async def test_allow_decision_record() -> None:
    proc = FakeProcessor(settings())
    out = await proc.process(item("c1", "hello").SerializeToString())
    assert out.kind == "decision"
    assert out.decision is not None
    d = out.decision
    assert d.action == taxonomy_pb2.ACTION_ALLOW
    assert d.content_id == "c1"
    assert d.final
    assert d.decided_by == "pipeline"
    assert d.policy_version == proc.policy_store.current().version
    assert [(m.name, m.version) for m in d.models] == [("fake-text", "1")]
    assert [r.topic for r in out.records] == ["decisions"]
    rec = out.records[0]
    assert rec.key == b"c1"
    assert rec.value == d.SerializeToString()


async def test_escalation_emits_review_task() -> None:
    proc = FakeProcessor(settings())
    out = await proc.process(item("c2", "bad words").SerializeToString())
    assert out.decision is not None and out.review is not None
    assert out.decision.action == taxonomy_pb2.ACTION_ESCALATE
    assert out.decision.escalation.rule == "threshold.escalate:hate"
    assert not out.decision.final
    assert [r.topic for r in out.records] == ["decisions", "review"]
    assert out.review.decision.decision_id == out.decision.decision_id
    assert out.review.item.id == "c2"
    assert out.review.required_verdicts == 1
    assert out.review.sla_deadline.seconds > out.review.created_at.seconds


async def test_high_severity_block_requires_two_verdicts() -> None:
    proc = FakeProcessor(settings())
    out = await proc.process(item("c3", "awful").SerializeToString())
    assert out.decision is not None and out.review is not None
    assert out.decision.action == taxonomy_pb2.ACTION_BLOCK
    assert out.decision.escalation.required_verdicts == 2
    assert out.review.required_verdicts == 2


async def test_not_configured_modality_is_missing_signal() -> None:
    proc = FakeProcessor(PipelineSettings())  # no endpoints at all
    out = await proc.process(item("c4", "hello").SerializeToString())
    assert out.decision is not None
    (missing,) = out.decision.missing_signals
    assert missing.modality == taxonomy_pb2.MODALITY_TEXT
    assert (missing.reason, missing.fallback) == ("not_configured", "escalate")
    assert out.decision.action == taxonomy_pb2.ACTION_ESCALATE
    assert out.decision.escalation.rule == "missing_signal.escalate:text"


class MemoryStore:
    """A media store in a dict (unit tests do no I/O; the real stores have their own tests)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, data: bytes, mime_type: str) -> content_pb2.Media:
        media = reference(f"s3://mem/{len(self.objects)}", data, mime_type)
        self.objects[media.uri] = data
        return media


async def test_image_without_vision_endpoint() -> None:
    store = MemoryStore()
    proc = FakeProcessor(settings(), media_store=store)
    it = item("c5", "hello")
    it.parts.append(
        content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png", inline_data=b"p"))
    )
    out = await proc.process(it.SerializeToString())
    assert out.decision is not None
    assert [(m.modality, m.reason) for m in out.decision.missing_signals] == [
        (taxonomy_pb2.MODALITY_IMAGE, "not_configured")
    ]
    # The escalation's review task carries a reference to the stored bytes, never the bytes.
    assert out.review is not None
    media = out.review.item.parts[1].media
    assert media.WhichOneof("source") == "uri" and media.size == 1
    assert store.objects == {media.uri: b"p"}


class FailingStore:
    def put(self, data: bytes, mime_type: str) -> content_pb2.Media:
        raise MediaUnavailable("s3://media/x: ConnectionRefused")


async def test_media_store_failure_for_a_review_task_is_dead_lettered() -> None:
    proc = FakeProcessor(settings(), media_store=FailingStore())
    it = item("c5b", "hello")
    it.parts.append(
        content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png", inline_data=b"p"))
    )
    out = await proc.process(it.SerializeToString())
    assert (out.kind, out.dlq_code, out.content_id) == ("dlq", "media_unavailable", "c5b")
    assert "review task" in out.dlq_reason
    # Nothing was kept for it: once the store is back, the item is decided (not re-emitted).
    back = FakeProcessor(settings(), media_store=MemoryStore(), store=proc.store)
    assert (await back.process(it.SerializeToString())).kind == "decision"


async def test_unavailable_classifier_names_missing_signal() -> None:
    proc = FakeProcessor(settings())
    proc.down.add(Modality.TEXT)
    out = await proc.process(item("c6", "hello").SerializeToString())
    assert out.decision is not None
    assert out.decision.missing_signals[0].reason == "unavailable"
    assert any("text signal missing (unavailable)" in r for r in out.decision.reasons)


async def test_decision_id_is_deterministic() -> None:
    raw = item("c7", "bad").SerializeToString()
    a = await FakeProcessor(settings()).process(raw)
    b = await FakeProcessor(settings()).process(raw)
    assert a.decision is not None and b.decision is not None
    assert a.decision.decision_id == b.decision.decision_id
    assert a.decision.action == b.decision.action
    assert a.review is not None and b.review is not None
    assert a.review.task_id == b.review.task_id
    # different content or policy version → different id
    c = await FakeProcessor(settings()).process(item("c7", "bad!").SerializeToString())
    assert c.decision is not None and c.decision.decision_id != a.decision.decision_id
    assert decision_id("c7", "v1", "s") != decision_id("c7", "v2", "s")
    assert decision_id("c7", "v1", "s") == decision_id("c7", "v1", "s")


async def test_dedupe_repeats_identical_decision_without_classifying() -> None:
    proc = FakeProcessor(settings())
    raw = item("c8", "bad").SerializeToString()
    first = await proc.process(raw)
    calls = proc.calls
    again = await proc.process(raw)
    assert proc.calls == calls
    assert again.kind == "duplicate"
    assert again.decision == first.decision
    # The same records again: the review task is rebuilt identically from the decision.
    assert [r.topic for r in again.records] == ["decisions", "review"]
    assert [r.value for r in again.records] == [r.value for r in first.records]


async def test_concurrent_duplicates_share_one_classification() -> None:
    proc = FakeProcessor(settings())
    raw = item("c9", "hello").SerializeToString()
    outs = await asyncio.gather(*(proc.process(raw) for _ in range(5)))
    assert proc.calls == 1
    assert len({o.records[0].value for o in outs}) == 1


async def test_dedupe_disabled() -> None:
    proc = FakeProcessor(settings(dedupe_cache_size=0))
    raw = item("c10", "hello").SerializeToString()
    await proc.process(raw)
    out = await proc.process(raw)
    assert out.kind == "decision"
    assert proc.calls == 2


async def test_dlq_record_preserves_bytes_and_headers() -> None:
    proc = FakeProcessor(settings())
    raw = b"\x0a\xff\xff not protobuf"
    out = await proc.process(raw, [("x-origin", b"app")], key=b"k1", source="content/0/42")
    assert out.kind == "dlq"
    (rec,) = out.records
    assert rec.topic == "dlq"
    assert rec.value == raw
    assert rec.key == b"k1"
    h = hdrs(rec.headers)
    assert h["x-origin"] == b"app"
    assert h[DLQ_ERROR_HEADER] == b"malformed_protobuf"
    assert b"not a ContentItem" in h[DLQ_REASON_HEADER]
    assert h[DLQ_SOURCE_HEADER] == b"content/0/42"
    assert out.dlq_code == "malformed_protobuf"


async def test_dlq_key_defaults_to_content_id() -> None:
    proc = FakeProcessor(settings())
    it = item("c11")
    out = await proc.process(it.SerializeToString())
    assert out.kind == "dlq"
    assert out.dlq_code == "no_parts"
    assert out.records[0].key == b"c11"


async def test_internal_error_goes_to_dlq_not_crash() -> None:
    class Broken(FakeFanout):
        async def classify_one(self, *args: object, **kw: object) -> MissingSignal:
            raise RuntimeError("boom")

    s = settings()
    out = await Processor(s, fanout=Broken(s)).process(item("c12", "x").SerializeToString())
    assert out.kind == "dlq"
    assert out.dlq_code == "internal_error"


class FlakyDecisionStore(MemoryDecisionStore):
    """The memory store whose writes fail `failures` times as the table's do while the broker
    is unavailable (or with `error`)."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__(100, 0.0, time.time)
        self.failures = failures
        self.error = error
        self.puts = 0

    async def put(self, decision: decision_pb2.ModerationDecision) -> None:
        self.puts += 1
        if self.failures > 0:
            self.failures -= 1
            if self.error is not None:
                raise self.error
            down = KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9)]")
            raise StoreFault("changelog send failed") from down
        await super().put(decision)


async def test_a_store_failure_is_retried_not_dead_lettered() -> None:
    store = FlakyDecisionStore(failures=2)
    proc = FakeProcessor(settings(decision_store_backoff_ms=1), store=store)
    out = await proc.process(item("c-store", "hello").SerializeToString())
    assert out.kind == "decision" and out.decision is not None
    assert store.puts == 3
    assert await store.get("c-store", out.decision.policy_version) == out.decision


async def test_a_store_that_stays_down_leaves_the_item_for_redelivery() -> None:
    store = FlakyDecisionStore(failures=3)
    proc = FakeProcessor(
        settings(decision_store_attempts=3, decision_store_backoff_ms=1), store=store
    )
    raw = item("c-down", "bad words").SerializeToString()
    with pytest.raises(DecisionStoreUnavailable, match="write failed 3 times") as caught:
        await proc.process(raw)
    assert isinstance(caught.value.__cause__, StoreFault)
    # The worker's loop tries it again until the broker is back: decided as usual.
    store.failures = 4
    again = await proc.process_until_stored(raw, pause_s=0.001)
    assert store.puts == 3 + 5
    assert again.kind == "decision" and again.decision is not None
    assert [r.topic for r in again.records] == ["decisions", "review"]
    # Bad input still goes to the DLQ, store or no store.
    store.failures = 10
    bad = await proc.process(b"\xff not a ContentItem")
    assert bad.kind == "dlq" and bad.dlq_code != "internal_error"


async def test_a_permanent_store_error_is_not_retried() -> None:
    store = FlakyDecisionStore(failures=1, error=RecordTooLargeError("decision too large"))
    proc = FakeProcessor(settings(decision_store_backoff_ms=1), store=store)
    out = await proc.process(item("c-big", "hello").SerializeToString())
    assert out.kind == "dlq" and out.dlq_code == "internal_error" and store.puts == 1


def _table_store(send: Callable[..., Awaitable[None]]) -> TableDecisionStore:
    """The durable store over an app that is never started; its changelog send is `send`."""
    app = faust.App("unit-first-decisions", broker="kafka://127.0.0.1:9", store="memory://")
    store = TableDecisionStore(app, partitions=1, retention_s=0)
    store.table.partition_for_key = lambda key: 0  # outside a stream event
    store.table.send_changelog = send
    return store


async def test_table_store_send_failures_are_faults_and_leave_nothing() -> None:
    async def down(*args: object) -> None:
        raise KafkaTimeoutError()

    async def too_large(*args: object) -> None:
        raise RecordTooLargeError("decision too large")

    decision = decision_pb2.ModerationDecision(content_id="c", policy_version="v")
    store = _table_store(down)
    with pytest.raises(StoreFault):
        await store.put(decision)
    # Not durable, so not kept: a retry decides it anew instead of re-emitting it.
    assert await store.get("c", "v") is None
    store = _table_store(too_large)
    with pytest.raises(RecordTooLargeError):
        await store.put(decision)
    assert await store.get("c", "v") is None


async def test_trace_context_continues_from_headers() -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    parent = [("traceparent", f"00-{trace_id}-b7ad6b7169203331-01".encode())]
    proc = FakeProcessor(settings())
    out = await proc.process(item("c13", "hello").SerializeToString(), parent)
    tp = hdrs(out.records[0].headers)["traceparent"].decode()
    # The output carries the same trace (when an SDK tracer is installed) or propagates the
    # incoming context unchanged (no-op tracer).
    assert tp.split("-")[1] == trace_id
    assert format_trace_id(int(trace_id, 16)) == trace_id


async def test_policy_hot_reload_applies_to_next_item(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text('version: "p1"\ndefaults: {escalate: 0.5, block: 0.9}')
    proc = FakeProcessor(settings(), policy=PolicyStore(path, check_interval=0.0))
    a = await proc.process(item("c14", "bad").SerializeToString())
    path.write_text('version: "p2"\ndefaults: {escalate: 0.7, block: 0.9}\n# changed')
    import os

    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = await proc.process(item("c15", "bad").SerializeToString())
    assert a.decision is not None and b.decision is not None
    assert (a.decision.policy_version, a.decision.action) == ("p1", taxonomy_pb2.ACTION_ESCALATE)
    assert (b.decision.policy_version, b.decision.action) == ("p2", taxonomy_pb2.ACTION_ALLOW)
    # The very same item again under the new policy is decided anew, not served from the cache.
    again = await proc.process(item("c14", "bad").SerializeToString())
    assert again.kind == "decision" and again.decision is not None
    assert (again.decision.policy_version, again.decision.action) == (
        "p2",
        taxonomy_pb2.ACTION_ALLOW,
    )


async def test_a_replay_re_emits_the_first_decision_though_signals_changed() -> None:
    """Decided while the classifier was down; replayed (a new worker sharing the store) once it
    is back: the stored decision again, byte for byte, not a second one."""
    s = settings()
    first_worker = FakeProcessor(s)
    first_worker.down.add(Modality.TEXT)
    raw = item("c16", "hello").SerializeToString()
    first = await first_worker.process(raw)
    assert first.decision is not None and first.decision.missing_signals

    replayer = FakeProcessor(s, store=first_worker.store)
    again = await replayer.process(raw)
    assert replayer.calls == 0
    assert again.kind == "duplicate"
    assert [r.value for r in again.records] == [r.value for r in first.records]
    assert [r.topic for r in again.records] == ["decisions", "review"]


async def test_changed_content_under_a_decided_id_keeps_the_first_decision() -> None:
    proc = FakeProcessor(settings())
    first = await proc.process(item("c17", "hello").SerializeToString())
    edited = await proc.process(item("c17", "awful").SerializeToString())
    assert edited.kind == "duplicate"
    assert first.decision is not None
    assert edited.decision == first.decision


async def test_memory_store_forgets_after_retention() -> None:
    now = [1_000_000.0]
    store = MemoryDecisionStore(10, retention_s=60.0, clock=lambda: now[0])
    proc = FakeProcessor(settings(), store=store)
    raw = item("c18", "hello").SerializeToString()
    first = await proc.process(raw)
    assert first.decision is not None
    now[0] = first.decision.decided_at.seconds + 30.0
    assert (await proc.process(raw)).kind == "duplicate"
    now[0] = first.decision.decided_at.seconds + 61.0
    assert (await proc.process(raw)).kind == "decision"
    assert proc.calls == 2
