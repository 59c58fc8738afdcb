"""The pipeline as plain async functions: validate → dedupe → classify (fan-out) → fuse →
decide → output records. No Kafka here: the faust worker (pipeline.app) feeds raw record
values and headers in and produces the returned records; tests call process() directly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from crossguard.core.media import MediaStore, open_store
from crossguard.core.proto_convert import (
    modality_to_proto,
    result_from_proto,
    score_from_proto,
    score_to_proto,
)
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.telemetry import extract_kafka_headers, inject_kafka_headers
from crossguard.pipeline.clients import ChannelPool, reason_for
from crossguard.pipeline.media import by_reference, media_rejection
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import RejectCode, Rejection, ValidItem, validate
from crossguard.policy import Decision, MissingSignal, Policy, PolicyStore, decide
from crossguard.policy.proto import action_to_proto, context_from_protos, fill_policy_fields
from crossguard.v1 import (
    classifier_pb2,
    consistency_pb2,
    content_pb2,
    decision_pb2,
    review_pb2,
)

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crossguard.pipeline")

Headers = Sequence[tuple[str, bytes]]
TopicKind = Literal["decisions", "review", "dlq"]

DLQ_REASON_HEADER = "crossguard-dlq-reason"
DLQ_ERROR_HEADER = "crossguard-dlq-error"
DLQ_SOURCE_HEADER = "crossguard-dlq-source"
DECISION_ID_HEADER = "crossguard-decision-id"
_MAX_REASON_BYTES = 1024

# Namespace for deterministic decision and review-task ids.
DECISION_NAMESPACE = uuid.UUID("6f1c7c1e-5b0e-4c1a-9a43-2f3f1b8f0c11")


def decision_id(content_id: str, policy_version: str, content_sha256: str) -> str:
    """Deterministic: the same item under the same policy always gets the same id."""
    return str(uuid.uuid5(DECISION_NAMESPACE, f"{content_id}\n{policy_version}\n{content_sha256}"))


def review_task_id(decision_id_: str) -> str:
    return str(uuid.uuid5(DECISION_NAMESPACE, f"review\n{decision_id_}"))


@dataclass(frozen=True)
class OutRecord:
    """One record to produce: `topic` is a logical name the worker maps to a real topic."""

    topic: TopicKind
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Outcome:
    kind: Literal["decision", "dlq", "duplicate"]
    content_id: str
    records: list[OutRecord] = field(default_factory=list)
    decision: decision_pb2.ModerationDecision | None = None
    review: review_pb2.ReviewTask | None = None
    dlq_code: str = ""
    dlq_reason: str = ""


@dataclass(frozen=True)
class Consistency:
    """The consistency service's answer and its fused scores, converted (and so validated)
    once."""

    response: consistency_pb2.CheckResponse
    fused: list[Score]


@dataclass(frozen=True)
class Signals:
    responses: list[classifier_pb2.ClassifyResponse]
    results: list[ClassifierResult]
    missing: list[MissingSignal]


def _ts(dt: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(dt)
    return ts


def dlq_record(
    raw: bytes | None,
    headers: Headers | None,
    rejection: Rejection,
    *,
    key: bytes | None = None,
    source: str = "",
) -> OutRecord:
    """The original bytes and headers, plus the reason and error code as headers."""
    reason = rejection.reason.encode("utf-8")[:_MAX_REASON_BYTES]
    out = [
        (k, v)
        for k, v in (headers or [])
        if k not in (DLQ_REASON_HEADER, DLQ_ERROR_HEADER, DLQ_SOURCE_HEADER)
    ]
    out += [(DLQ_REASON_HEADER, reason), (DLQ_ERROR_HEADER, rejection.code.encode())]
    if source:
        out.append((DLQ_SOURCE_HEADER, source.encode()))
    if key is None and rejection.content_id:
        key = rejection.content_id.encode()
    return OutRecord("dlq", key, raw or b"", out)


def build_decision(
    valid: ValidItem,
    decision: Decision,
    responses: Sequence[classifier_pb2.ClassifyResponse],
    consistency: consistency_pb2.CheckResponse | None,
    now: datetime,
) -> decision_pb2.ModerationDecision:
    item = valid.item
    did = decision_id(item.id, decision.policy_version, valid.content_sha256)
    msg = decision_pb2.ModerationDecision(
        decision_id=did,
        content_id=item.id,
        tenant=item.tenant,
        surface=item.surface,
        action=action_to_proto(decision.action),
        reasons=decision.reasons,
        policy_version=decision.policy_version,
        decided_by="pipeline",
        final=not decision.escalation.escalated,
    )
    msg.categories.extend(score_to_proto(s) for s in decision.categories)
    for resp in responses:
        if resp.evidence:
            msg.evidence.append(
                decision_pb2.ModalityEvidence(modality=resp.modality, evidence=resp.evidence)
            )
    for m in decision.missing:
        msg.missing_signals.append(
            decision_pb2.MissingSignal(
                modality=modality_to_proto(m.modality), reason=m.reason, fallback=m.fallback
            )
        )
    seen: set[tuple[str, str]] = set()
    model_lists = [r.models for r in responses]
    if consistency is not None:
        model_lists.append(consistency.models)
        msg.consistency.extend(consistency.signals)
    for models in model_lists:
        for model in models:
            if (model.name, model.version) not in seen:
                seen.add((model.name, model.version))
                msg.models.append(model)
    esc = decision.escalation
    msg.escalation.CopyFrom(
        decision_pb2.Escalation(
            escalated=esc.escalated,
            rule=esc.rule,
            priority=esc.priority,
            required_verdicts=esc.required_verdicts,
        )
    )
    if item.HasField("created_at"):
        msg.content_created_at.CopyFrom(item.created_at)
    msg.decided_at.CopyFrom(_ts(now))
    fill_policy_fields(msg, decision)
    return msg


def build_review_task(
    item: content_pb2.ContentItem,
    decision: decision_pb2.ModerationDecision,
    sla_minutes: int,
    now: datetime,
) -> review_pb2.ReviewTask:
    return review_pb2.ReviewTask(
        task_id=review_task_id(decision.decision_id),
        item=item,
        decision=decision,
        priority=decision.escalation.priority,
        created_at=_ts(now),
        sla_deadline=_ts(now + timedelta(minutes=sla_minutes)),
        required_verdicts=decision.escalation.required_verdicts,
    )


class Processor:
    """Turns one raw content record into output records. Safe to call concurrently."""

    def __init__(
        self,
        settings: PipelineSettings,
        policy: PolicyStore | None = None,
        *,
        metrics: PipelineMetrics | None = None,
        media_store: MediaStore | None = None,
    ) -> None:
        self.settings = settings
        self.policy_store = policy or PolicyStore(
            settings.policy_path, check_interval=settings.policy_check_interval_s
        )
        self.metrics = metrics or PipelineMetrics()
        self.channels = ChannelPool(
            max_message_bytes=settings.grpc_max_message_bytes,
            initial_backoff_ms=settings.retry_initial_backoff_ms,
            connections=settings.grpc_connections,
        )
        self.endpoints: dict[Modality, str] = {
            Modality.TEXT: settings.text_endpoint,
            Modality.IMAGE: settings.vision_endpoint,
            Modality.AUDIO: settings.audio_endpoint,
        }
        # (content id, content sha256, policy version) → decision, like decision_id.
        self._seen: OrderedDict[tuple[str, str, str], decision_pb2.ModerationDecision] = (
            OrderedDict()
        )
        self._inflight: dict[tuple[str, str, str], asyncio.Future[Outcome]] = {}
        self._media_store = media_store

    @property
    def media_store(self) -> MediaStore:
        """Where review tasks' inline media go (CROSSGUARD_MEDIA_STORE_URI, opened on first
        use)."""
        if self._media_store is None:
            self._media_store = open_store(self.settings.media)
        return self._media_store

    async def close(self) -> None:
        await self.channels.close()

    # -- entry point ------------------------------------------------------------------------

    async def process(
        self,
        raw: bytes | None,
        headers: Headers | None = None,
        *,
        key: bytes | None = None,
        source: str = "",
    ) -> Outcome:
        """Process one record. Never raises for bad input or failing services: bad input →
        a DLQ record; failing classifiers → missing signals handled by the policy."""
        start = time.perf_counter()
        parent = extract_kafka_headers(headers)
        with tracer.start_as_current_span(
            "consume",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={"messaging.system": "kafka", "messaging.source": source},
        ) as span:
            try:
                outcome = await self._process(raw, headers, key=key, source=source)
            except Rejection as refused:  # a classifier refused the item's media
                outcome = self._dlq(raw, headers, refused, key=key, source=source)
            except Exception as exc:  # a bug must not stop the stream: DLQ it, loudly
                log.exception("pipeline error; item sent to the DLQ")
                span.record_exception(exc)
                rejection = Rejection(RejectCode.INTERNAL, f"internal error: {type(exc).__name__}")
                outcome = self._dlq(raw, headers, rejection, key=key, source=source)
            span.set_attribute("crossguard.content_id", outcome.content_id)
            span.set_attribute("crossguard.outcome", outcome.kind)
            if outcome.kind == "dlq":
                span.set_status(Status(StatusCode.ERROR, outcome.dlq_code))
        self.metrics.items.add(1, {"outcome": outcome.kind})
        self.metrics.stage_duration.record((time.perf_counter() - start) * 1000, {"stage": "total"})
        return outcome

    def _dlq(
        self,
        raw: bytes | None,
        headers: Headers | None,
        rejection: Rejection,
        *,
        key: bytes | None,
        source: str,
    ) -> Outcome:
        self.metrics.dlq.add(1, {"code": rejection.code})
        log.warning(
            "item rejected",
            extra={
                "content_id": rejection.content_id,
                "code": rejection.code,
                "reason": rejection.reason,
            },
        )
        record = dlq_record(raw, headers, rejection, key=key, source=source)
        return Outcome(
            "dlq",
            rejection.content_id,
            [record],
            dlq_code=rejection.code,
            dlq_reason=rejection.reason,
        )

    async def _process(
        self, raw: bytes | None, headers: Headers | None, *, key: bytes | None, source: str
    ) -> Outcome:
        t0 = time.perf_counter()
        try:
            valid = validate(raw, self.settings)
        except Rejection as rejection:
            return self._dlq(raw, headers, rejection, key=key, source=source)
        finally:
            self.metrics.stage_duration.record(
                (time.perf_counter() - t0) * 1000, {"stage": "validate"}
            )

        # Same key as decision_id: a repeat under a newer policy is decided again.
        policy = self.policy_store.current()
        dedupe_key = (valid.content_id, valid.content_sha256, policy.version)
        cached = self._seen.get(dedupe_key)
        if cached is not None:
            self._seen.move_to_end(dedupe_key)
            return self._duplicate(valid, cached)
        pending = self._inflight.get(dedupe_key)
        if pending is not None:
            try:
                first = await asyncio.shield(pending)
                if first.decision is not None:
                    return self._duplicate(valid, first.decision)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # Only the first caller was cancelled: decide this repeat ourselves.
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[dedupe_key] = future
        try:
            outcome = await self._decide(valid, policy)
            future.set_result(outcome)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; a waiting duplicate re-raises it
            raise
        finally:
            self._inflight.pop(dedupe_key, None)
        if self.settings.dedupe_cache_size and outcome.decision is not None:
            self._seen[dedupe_key] = outcome.decision
            while len(self._seen) > self.settings.dedupe_cache_size:
                self._seen.popitem(last=False)
        return outcome

    def _duplicate(self, valid: ValidItem, decision: decision_pb2.ModerationDecision) -> Outcome:
        """An identical repeat: the same decision record again (no second review task)."""
        headers = inject_kafka_headers([(DECISION_ID_HEADER, decision.decision_id.encode())])
        record = OutRecord(
            "decisions", valid.content_id.encode(), decision.SerializeToString(), headers
        )
        return Outcome("duplicate", valid.content_id, [record], decision=decision)

    async def _decide(self, valid: ValidItem, policy: Policy) -> Outcome:
        item = valid.item
        signals = await self.classify(valid, policy)
        consistency = await self.check_consistency(item, signals)

        t0 = time.perf_counter()
        with tracer.start_as_current_span("decide") as span:
            fused = consistency.fused if consistency is not None else None
            context = context_from_protos(
                consistency.response if consistency is not None else None, locale=item.locale
            )
            decision = decide(
                policy, item, signals.results, signals.missing, fused=fused, context=context
            )
            if consistency is None and self.settings.consistency_endpoint and signals.results:
                decision.reasons.append("consistency service unavailable: local max fusion")
            now = datetime.now(UTC)
            msg = build_decision(
                valid,
                decision,
                signals.responses,
                consistency.response if consistency is not None else None,
                now,
            )
            span.set_attribute("crossguard.action", decision.action.value)
            span.set_attribute("crossguard.policy_version", decision.policy_version)
            span.set_attribute("crossguard.decision_id", msg.decision_id)
        self.metrics.stage_duration.record((time.perf_counter() - t0) * 1000, {"stage": "decide"})
        self.metrics.decisions.add(1, {"action": decision.action.value})
        for hit in decision.hits:
            if hit.category is not None:
                self.metrics.decision_categories.add(
                    1, {"action": decision.action.value, "category": hit.category.value}
                )
        for m in decision.missing:
            self.metrics.missing.add(1, {"modality": m.modality.value, "reason": m.reason})

        key = item.id.encode()
        headers = inject_kafka_headers([(DECISION_ID_HEADER, msg.decision_id.encode())])
        records = [OutRecord("decisions", key, msg.SerializeToString(), headers)]
        review = None
        if decision.escalation.escalated:
            # Review tasks carry media references, never bytes.
            task_item = await by_reference(item, self.media_store)
            review = build_review_task(task_item, msg, policy.escalation.sla_minutes, now)
            records.append(OutRecord("review", key, review.SerializeToString(), list(headers)))
        return Outcome("decision", item.id, records, decision=msg, review=review)

    # -- fan-out ----------------------------------------------------------------------------

    async def classify(self, valid: ValidItem, policy: Policy) -> Signals:
        """Call every classifier the item needs, concurrently, each with its own deadline
        and bounded retries from the policy."""
        modalities = sorted(valid.parts_by_modality, key=lambda m: m.value)
        calls = [self._classify_one(valid, m, policy) for m in modalities]
        outcomes = await asyncio.gather(*calls)
        responses: list[classifier_pb2.ClassifyResponse] = []
        results: list[ClassifierResult] = []
        missing: list[MissingSignal] = []
        for modality, outcome in zip(modalities, outcomes, strict=True):
            if isinstance(outcome, MissingSignal):
                missing.append(outcome)
                continue
            try:
                results.append(result_from_proto(outcome))
            except ValueError as exc:
                missing.append(MissingSignal(modality, "bad_response", detail=str(exc)))
                continue
            responses.append(outcome)
        return Signals(responses, results, missing)

    async def _classify_one(
        self, valid: ValidItem, modality: Modality, policy: Policy
    ) -> classifier_pb2.ClassifyResponse | MissingSignal:
        endpoint = self.endpoints.get(modality, "")
        if not endpoint:
            return MissingSignal(modality, "not_configured")
        item = valid.item
        sig = policy.signal(modality, item.tenant, item.surface)
        request = classifier_pb2.ClassifyRequest(
            content_id=item.id, parts=valid.parts_by_modality[modality], locale=item.locale
        )
        stub = self.channels.classifier(endpoint, sig.retries)
        t0 = time.perf_counter()
        with tracer.start_as_current_span(
            f"classify {modality.value}",
            kind=SpanKind.INTERNAL,
            attributes={"crossguard.modality": modality.value, "crossguard.endpoint": endpoint},
        ) as span:
            try:
                response: classifier_pb2.ClassifyResponse = await stub.Classify(
                    request, timeout=sig.deadline_ms / 1000.0
                )
            except grpc.aio.AioRpcError as exc:
                rejection = media_rejection(modality.value, exc.details() or "", item.id)
                if rejection is not None:
                    span.set_status(Status(StatusCode.ERROR, rejection.code))
                    raise rejection from None
                reason = reason_for(exc.code())
                span.set_status(Status(StatusCode.ERROR, reason))
                log.warning(
                    "classifier call failed",
                    extra={
                        "content_id": item.id,
                        "modality": modality.value,
                        "reason": reason,
                        "details": exc.details(),
                    },
                )
                return MissingSignal(modality, reason, detail=exc.details() or "")
            finally:
                self.metrics.stage_duration.record(
                    (time.perf_counter() - t0) * 1000,
                    {"stage": "classify", "modality": modality.value},
                )
        return response

    async def check_consistency(
        self, item: content_pb2.ContentItem, signals: Signals
    ) -> Consistency | None:
        """Consistency + fusion service when configured (None → local max fusion)."""
        endpoint = self.settings.consistency_endpoint
        if not endpoint or not signals.responses:
            return None
        stub = self.channels.consistency(endpoint, self.settings.consistency_retries)
        request = consistency_pb2.CheckRequest(item=item, responses=signals.responses)
        t0 = time.perf_counter()
        with tracer.start_as_current_span("consistency") as span:
            try:
                response: consistency_pb2.CheckResponse = await stub.Check(
                    request, timeout=self.settings.consistency_deadline_ms / 1000.0
                )
                # Converted here so that a bad response falls back cleanly.
                return Consistency(response, [score_from_proto(s) for s in response.fused_scores])
            except (grpc.aio.AioRpcError, ValueError) as exc:
                reason = (
                    reason_for(exc.code()) if isinstance(exc, grpc.aio.AioRpcError) else "error"
                )
                span.set_status(Status(StatusCode.ERROR, reason))
                log.warning(
                    "consistency call failed; local fusion",
                    extra={"content_id": item.id, "reason": reason},
                )
                return None
            finally:
                self.metrics.stage_duration.record(
                    (time.perf_counter() - t0) * 1000, {"stage": "consistency"}
                )
