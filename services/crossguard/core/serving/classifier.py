"""The lifecycle every classifier shares, as a base class: the model loaded off the event loop,
a micro-batcher around `model.predict`, metrics (crossguard.core.classifier_metrics), start /
ready / close, and request timing and outcome counting around each classify call.

A modality subclasses BatchedClassifier and implements `_classify(content_id, request,
max_evidence)`: its validation, preparation, model calls (through `self.batcher`) and
evidence. `classify_batch` classifies many requests at once (the ClassifyBatch RPC): each item
gets its own outcome, and by default the items run concurrently so that their model inputs
meet in the micro-batcher; a modality may override `_classify_many` with a cheaper path for
many items (the text classifier does). Domain code only: no gRPC here
(crossguard.core.serving.servicer is the edge).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from crossguard.core.batcher import MicroBatcher
from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import NotReady
from crossguard.core.model_contract import Model
from crossguard.core.results import ClassifierResult, Modality
from crossguard.core.serving.serving_settings import ServingSettings
from crossguard.core.taxonomy import Category

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")  # the domain input of one request (what the part parser returns)
ItemT = TypeVar("ItemT")  # one model input (a text, an image tensor, an audio window)
OutT = TypeVar("OutT")  # one model output (e.g. probabilities per category)


RequestT_co = TypeVar("RequestT_co", covariant=True)


@dataclass(frozen=True)
class BatchItem(Generic[RequestT_co]):
    """One request of a batch: what `classify` takes for one item."""

    content_id: str
    request: RequestT_co
    max_evidence: int = 0


# One item's outcome in a batch: its result, or the error it ended with.
Outcome = ClassifierResult | Exception


class BatchedClassifier(ABC, Generic[RequestT, ItemT, OutT]):
    """A modality's classifier over a Model[ItemT, OutT]; see the module docstring."""

    def __init__(
        self,
        model: Model[ItemT, OutT],
        settings: ServingSettings,
        modality: Modality,
        *,
        owns_model: bool = True,
        metrics: ClassifierMetrics | None = None,
        default_threshold: float = 0.5,
    ) -> None:
        """`owns_model=False` leaves loading state alone on close (a model shared by tests or
        by several classifiers in one process). `metrics`: where requests and model calls are
        counted (default: the global meter provider's). `default_threshold`: for categories
        whose threshold the model does not declare."""
        self.model = model
        self.modality = modality
        self.default_threshold = default_threshold
        self._owns_model = owns_model
        self.metrics = metrics or ClassifierMetrics(modality.value)
        self._batcher: MicroBatcher[ItemT, OutT] = MicroBatcher(
            model.predict,
            max_batch=settings.batch_max,
            max_delay=settings.batch_max_delay_ms / 1000.0,
            max_queue=settings.queue_max,
            workers=settings.batch_workers,
            name=f"{modality.value}-model",
            on_batch=self.metrics.batch,
        )
        self._started = False
        self.categories: list[Category] = []
        self.thresholds: dict[Category, float] = {}
        self.model_infos: list[tuple[str, str]] = []

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the model in a worker thread (unless it is loaded) and start the batcher."""
        if not self.model.ready():
            t0 = time.perf_counter()
            await asyncio.to_thread(self.model.load)
            log.info(
                f"{self.modality.value} model loaded",
                extra={
                    "model": self.model.name,
                    "model_version": self.model.version,
                    "seconds": round(time.perf_counter() - t0, 3),
                },
            )
        # Read once: a model's properties may build fresh copies on every access.
        self.categories = list(self.model.categories)
        self.thresholds = dict(self.model.thresholds)
        self.model_infos = list(self.model.model_infos)
        self._batcher.start()
        self.metrics.watch_queue(lambda: self._batcher.queued)
        self._started = True

    def ready(self) -> bool:
        return self._started and self.model.ready()

    async def close(self) -> None:
        self.metrics.watch_queue(None)
        await self._batcher.stop()
        self._started = False
        if self._owns_model:
            await asyncio.to_thread(self.model.close)

    @property
    def batcher(self) -> MicroBatcher[ItemT, OutT]:
        return self._batcher

    def threshold(self, category: Category) -> float:
        return self.thresholds.get(category, self.default_threshold)

    # --- classification ----------------------------------------------------------------------

    async def classify(
        self, content_id: str, request: RequestT, max_evidence: int = 0
    ) -> ClassifierResult:
        """Classify one request of item `content_id`: `_classify`, timed and counted.

        Raises NotReady before start(), and whatever domain errors `_classify` raises
        (InvalidInput, LimitExceeded, Overloaded, ...)."""
        started = time.perf_counter()
        try:
            if not self.ready():
                raise NotReady(f"{self.modality.value} model is not loaded yet")
            result = await self._classify(content_id, request, max_evidence)
        except BaseException as exc:  # cancellation included: the caller went away
            self.metrics.request(time.perf_counter() - started, exc)
            raise
        self.metrics.request(time.perf_counter() - started)
        return result

    @abstractmethod
    async def _classify(
        self, content_id: str, request: RequestT, max_evidence: int
    ) -> ClassifierResult:
        """The modality's work: validate, prepare, score through `self.batcher`, evidence."""

    async def classify_batch(self, items: Sequence[BatchItem[RequestT]]) -> list[Outcome]:
        """Classify many requests at once: one outcome per item, in order, its result or the
        error it ended with (one item's failure never fails the others). Each item is timed
        and counted as a request; the batch's size is recorded. Cancellation (the caller went
        away, the deadline passed) ends the whole batch, and its queued model work is
        dropped."""
        started = time.perf_counter()
        self.metrics.batch_call(len(items))
        outcomes: list[Outcome]
        try:
            if not self.ready():
                error = NotReady(f"{self.modality.value} model is not loaded yet")
                outcomes = [error] * len(items)
            else:
                outcomes = await self._classify_many(items)
        except BaseException as exc:
            elapsed = time.perf_counter() - started
            for _ in items:
                self.metrics.request(elapsed, exc)
            raise
        elapsed = time.perf_counter() - started
        for outcome in outcomes:
            self.metrics.request(elapsed, outcome if isinstance(outcome, Exception) else None)
        return outcomes

    async def _classify_many(self, items: Sequence[BatchItem[RequestT]]) -> list[Outcome]:
        """Every item's `_classify`, concurrently (their model inputs meet in the micro-batcher).
        A modality may override this with a path that costs less per item."""
        done = await asyncio.gather(
            *(self._classify(i.content_id, i.request, i.max_evidence) for i in items),
            return_exceptions=True,
        )
        outcomes: list[Outcome] = []
        for outcome in done:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome  # cancellation and the like end the batch
            outcomes.append(outcome)
        return outcomes

    async def predict(self, items: Sequence[ItemT]) -> list[OutT]:
        """Score `items` through the micro-batcher (coalesced with other requests' items)."""
        if len(items) == 1:  # the common case: no gather, no extra tasks
            return [await self._batcher.submit(items[0])]
        return await self._batcher.submit_many(items)
