"""Fan-out: every classifier an item needs, called concurrently with the policy's deadline and
retries per modality, then the consistency service. A failing service never fails the item:
it becomes a missing signal (classifiers) or local max fusion (consistency). A classifier that
refuses the item's media (a media reason code, core.media) raises the Rejection that
dead-letters the item."""

from __future__ import annotations

import asyncio
import logging
import time

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from crossguard.core.results import ClassifierResult, Modality
from crossguard.pipeline.clients import CallFailed, ServiceClients
from crossguard.pipeline.media import media_rejection
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.signals import Consistency, Signals
from crossguard.pipeline.validate import ValidItem
from crossguard.policy import MissingSignal, Policy
from crossguard.v1 import classifier_pb2, content_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crossguard.pipeline")


class Fanout:
    def __init__(
        self, settings: PipelineSettings, clients: ServiceClients, metrics: PipelineMetrics
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.metrics = metrics
        self.endpoints: dict[Modality, str] = {
            Modality.TEXT: settings.text_endpoint,
            Modality.IMAGE: settings.vision_endpoint,
            Modality.AUDIO: settings.audio_endpoint,
        }

    async def close(self) -> None:
        await self.clients.close()

    async def classify(self, valid: ValidItem, policy: Policy) -> Signals:
        """Call every classifier the item needs, concurrently."""
        modalities = sorted(valid.parts_by_modality, key=lambda m: m.value)
        outcomes = await asyncio.gather(*(self.classify_one(valid, m, policy) for m in modalities))
        results = [o for o in outcomes if isinstance(o, ClassifierResult)]
        missing = [o for o in outcomes if isinstance(o, MissingSignal)]
        # Parts a classifier could not read (e.g. unsupported_language): the policy's fallback
        # for a missing signal applies, never a silent allow.
        missing += [
            MissingSignal(r.modality, u.reason, detail=f"part {u.part_id}: {u.detail}")
            for r in results
            for u in r.unread
        ]
        return Signals(results, missing)

    async def classify_one(
        self, valid: ValidItem, modality: Modality, policy: Policy
    ) -> ClassifierResult | MissingSignal:
        endpoint = self.endpoints.get(modality, "")
        if not endpoint:
            return MissingSignal(modality, "not_configured")
        item = valid.item
        sig = policy.signal(modality, item.tenant, item.surface)
        request = classifier_pb2.ClassifyRequest(
            content_id=item.id, parts=valid.parts_by_modality[modality], locale=item.locale
        )
        t0 = time.perf_counter()
        with tracer.start_as_current_span(
            f"classify {modality.value}",
            kind=SpanKind.INTERNAL,
            attributes={"crossguard.modality": modality.value, "crossguard.endpoint": endpoint},
        ) as span:
            try:
                return await self.clients.classify(
                    endpoint, request, retries=sig.retries, timeout_s=sig.deadline_ms / 1000.0
                )
            except CallFailed as exc:
                rejection = media_rejection(modality.value, exc.detail, item.id)
                if rejection is not None:  # the item's media, not the service: DLQ the item
                    span.set_status(Status(StatusCode.ERROR, rejection.code))
                    raise rejection from None
                span.set_status(Status(StatusCode.ERROR, exc.reason))
                log.warning(
                    "classifier call failed",
                    extra={
                        "content_id": item.id,
                        "modality": modality.value,
                        "reason": exc.reason,
                        "details": exc.detail,
                    },
                )
                return MissingSignal(modality, exc.reason, detail=exc.detail)
            finally:
                self.metrics.stage_duration.record(
                    (time.perf_counter() - t0) * 1000,
                    {"stage": "classify", "modality": modality.value},
                )

    async def check_consistency(
        self, item: content_pb2.ContentItem, signals: Signals
    ) -> Consistency | None:
        """Consistency + fusion service when configured (None → local max fusion)."""
        endpoint = self.settings.consistency_endpoint
        if not endpoint or not signals.results:
            return None
        t0 = time.perf_counter()
        with tracer.start_as_current_span("consistency") as span:
            try:
                return await self.clients.check(
                    endpoint,
                    item,
                    signals.results,
                    retries=self.settings.consistency_retries,
                    timeout_s=self.settings.consistency_deadline_ms / 1000.0,
                )
            except CallFailed as exc:
                span.set_status(Status(StatusCode.ERROR, exc.reason))
                log.warning(
                    "consistency call failed; local fusion",
                    extra={"content_id": item.id, "reason": exc.reason},
                )
                return None
            finally:
                self.metrics.stage_duration.record(
                    (time.perf_counter() - t0) * 1000, {"stage": "consistency"}
                )
