"""The orchestrator, as plain async functions: validate → de-duplicate → fan out → decide →
output records. No Kafka here: the faust worker (pipeline.app) feeds raw record values and
headers in and produces the returned records; tests call process() directly.

The parts live in their own modules: records (what is returned), dead_letter (the DLQ format),
fanout and clients (service calls, domain results only), assemble (decision and review-task
messages), dedupe (single-flight and the first-decision store).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.media import MediaStore, open_store
from crossguard.core.telemetry import extract_kafka_headers, inject_kafka_headers
from crossguard.pipeline.assemble import build_decision, build_review_task, decision_id
from crossguard.pipeline.clients import ServiceClients
from crossguard.pipeline.dead_letter import dead_letter_record
from crossguard.pipeline.dedupe import (
    DecisionStore,
    DecisionStoreUnavailable,
    MemoryDecisionStore,
    SingleFlight,
    with_retries,
)
from crossguard.pipeline.fanout import Fanout
from crossguard.pipeline.media import by_reference
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.records import DECISION_ID_HEADER, Headers, Outcome, OutcomeKind, OutRecord
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import RejectCode, Rejection, ValidItem, validate
from crossguard.policy import Policy, PolicyStore, decide
from crossguard.policy.proto import context_from_protos
from crossguard.v1 import decision_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crossguard.pipeline")

T = TypeVar("T")

_PAUSE_MAX_S = 30.0  # between tries of an item while the decision store is down


def default_fanout(settings: PipelineSettings, metrics: PipelineMetrics) -> Fanout:
    channels = ChannelPool(
        max_message_bytes=settings.grpc_max_message_bytes,
        initial_backoff_ms=settings.retry_initial_backoff_ms,
        connections=settings.grpc_connections,
        classify_batch_max_items=settings.classify_batch_max_items,
        classify_batch_max_delay_ms=settings.classify_batch_max_delay_ms,
    )
    return Fanout(settings, ServiceClients(channels), metrics)


class Processor:
    """Turns one raw content record into output records. Safe to call concurrently.

    `store` keeps the first decision per (content id, policy version); the default is the
    in-process MemoryDecisionStore (the worker passes its durable faust table)."""

    def __init__(
        self,
        settings: PipelineSettings,
        policy: PolicyStore | None = None,
        *,
        metrics: PipelineMetrics | None = None,
        fanout: Fanout | None = None,
        store: DecisionStore | None = None,
        media_store: MediaStore | None = None,
    ) -> None:
        self.settings = settings
        self.policy_store = policy or PolicyStore(
            settings.policy_path, check_interval=settings.policy_check_interval_s
        )
        self.metrics = metrics or PipelineMetrics()
        self.fanout = fanout or default_fanout(settings, self.metrics)
        self.store: DecisionStore = (
            store
            if store is not None
            else MemoryDecisionStore(
                settings.dedupe_cache_size, settings.decision_retention_s, time.time
            )
        )
        # Keyed like decision_id: concurrent copies of one item are decided once.
        self._single_flight: SingleFlight[tuple[str, str, str], Outcome] = SingleFlight()
        self._media_store = media_store

    @property
    def media_store(self) -> MediaStore:
        """Where review tasks' inline media go (CROSSGUARD_MEDIA_STORE_URI, opened on first
        use)."""
        if self._media_store is None:
            self._media_store = open_store(self.settings.media)
        return self._media_store

    async def close(self) -> None:
        await self.fanout.close()

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
        a DLQ record; failing classifiers → missing signals handled by the policy.

        Raises DecisionStoreUnavailable when the decision store keeps failing (after
        CROSSGUARD_DECISION_STORE_ATTEMPTS tries): the item is good, so it is not dead-lettered;
        the caller must not commit it and processes it again."""
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
                outcome = self.dead_letter(raw, headers, refused, key=key, source=source)
            except DecisionStoreUnavailable as exc:  # not the item's fault: no DLQ
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, "decision store unavailable"))
                self.metrics.items.add(1, {"outcome": "retry"})
                raise
            except Exception as exc:  # a bug must not stop the stream: DLQ it, loudly
                log.exception("pipeline error; item sent to the DLQ")
                span.record_exception(exc)
                rejection = Rejection(RejectCode.INTERNAL, f"internal error: {type(exc).__name__}")
                outcome = self.dead_letter(raw, headers, rejection, key=key, source=source)
            span.set_attribute("crossguard.content_id", outcome.content_id)
            span.set_attribute("crossguard.outcome", outcome.kind)
            if outcome.kind == "dlq":
                span.set_status(Status(StatusCode.ERROR, outcome.dlq_code))
        self.metrics.items.add(1, {"outcome": outcome.kind})
        self.metrics.stage_duration.record((time.perf_counter() - start) * 1000, {"stage": "total"})
        return outcome

    async def process_until_stored(
        self,
        raw: bytes | None,
        headers: Headers | None = None,
        *,
        key: bytes | None = None,
        source: str = "",
        pause_s: float = 1.0,
    ) -> Outcome:
        """process(), again and again while the decision store is unavailable (pausing
        `pause_s`, doubling, at most 30 s): the worker's loop. Its event stays unacknowledged
        meanwhile, so its offset is not committed and a restart redelivers it."""
        while True:
            try:
                return await self.process(raw, headers, key=key, source=source)
            except DecisionStoreUnavailable:
                log.exception(
                    "decision store unavailable; the item will be processed again",
                    extra={"source": source},
                )
                await asyncio.sleep(pause_s)
                pause_s = min(pause_s * 2, _PAUSE_MAX_S)

    def dead_letter(
        self,
        raw: bytes | None,
        headers: Headers | None,
        rejection: Rejection,
        *,
        key: bytes | None,
        source: str,
    ) -> Outcome:
        """The item to the DLQ with its reason (counted and logged)."""
        self.metrics.dlq.add(1, {"code": rejection.code})
        log.warning(
            "item rejected",
            extra={
                "content_id": rejection.content_id,
                "code": rejection.code,
                "reason": rejection.reason,
            },
        )
        record = dead_letter_record(raw, headers, rejection, key=key, source=source)
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
            return self.dead_letter(raw, headers, rejection, key=key, source=source)
        finally:
            self.metrics.stage_duration.record(
                (time.perf_counter() - t0) * 1000, {"stage": "validate"}
            )
        # A policy change decides a repeat anew (a new decision_id); everything else re-emits.
        policy = self.policy_store.current()
        flight = (valid.content_id, valid.content_sha256, policy.version)
        outcome, shared = await self._single_flight.run(
            flight, lambda: self._first_decision(valid, policy)
        )
        if shared and outcome.decision is not None:
            return await self._outcome(valid, outcome.decision, policy, "duplicate")
        return outcome

    async def _first_decision(self, valid: ValidItem, policy: Policy) -> Outcome:
        """The stored decision for (content id, policy version), or a new one, stored once its
        records are built and before they are emitted (so that a crash after emitting replays
        the same records, and an item dead-lettered while building them leaves nothing)."""
        stored = await self._store_op(
            "read", lambda: self.store.get(valid.content_id, policy.version)
        )
        if stored is not None:
            if stored.decision_id != decision_id(
                valid.content_id, policy.version, valid.content_sha256
            ):
                log.warning(
                    "content changed under an id already decided; the first decision stands",
                    extra={"content_id": valid.content_id, "decision_id": stored.decision_id},
                )
            return await self._outcome(valid, stored, policy, "duplicate")
        decision = await self._decide(valid, policy)
        outcome = await self._outcome(valid, decision, policy, "decision")
        await self._store_op("write", lambda: self.store.put(decision))
        return outcome

    async def _store_op(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        return await with_retries(
            operation,
            what=what,
            attempts=self.settings.decision_store_attempts,
            backoff_s=self.settings.decision_store_backoff_ms / 1000.0,
        )

    async def _decide(self, valid: ValidItem, policy: Policy) -> decision_pb2.ModerationDecision:
        item = valid.item
        signals = await self.fanout.classify(valid, policy)
        consistency = await self.fanout.check_consistency(item, signals)

        t0 = time.perf_counter()
        with tracer.start_as_current_span("decide") as span:
            fused = consistency.fused if consistency is not None else None
            context = (
                consistency.context
                if consistency is not None
                else context_from_protos(None, locale=item.locale)
            )
            decision = decide(
                policy, item, signals.results, signals.missing, fused=fused, context=context
            )
            if consistency is None and self.settings.consistency_endpoint and signals.results:
                decision.reasons.append("consistency service unavailable: local max fusion")
            elif consistency is not None and consistency.explanation:
                decision.reasons.append(f"fusion: {consistency.explanation}")
            msg = build_decision(
                valid,
                decision,
                signals.results,
                consistency,
                datetime.now(UTC),
                transcript_max_chars=self.settings.transcript_max_chars,
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
        return msg

    async def _outcome(
        self,
        valid: ValidItem,
        decision: decision_pb2.ModerationDecision,
        policy: Policy,
        kind: OutcomeKind,
    ) -> Outcome:
        """The decision record, and the review task for an escalation. Both are built from the
        decision alone (ids, times; media references are content addresses), so a re-emitted
        decision yields the same records."""
        key = valid.content_id.encode()
        headers = inject_kafka_headers([(DECISION_ID_HEADER, decision.decision_id.encode())])
        records = [OutRecord("decisions", key, decision.SerializeToString(), headers)]
        review = None
        if decision.escalation.escalated:
            # Review tasks carry media references, never bytes.
            task_item = await by_reference(valid.item, self.media_store)
            review = build_review_task(task_item, decision, policy.escalation.sla_minutes)
            records.append(OutRecord("review", key, review.SerializeToString(), list(headers)))
        return Outcome(kind, valid.content_id, records, decision=decision, review=review)
