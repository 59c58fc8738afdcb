"""Classifier service metrics (OpenTelemetry meter "crossguard.classifier"), one set per
classifier in a server process, for every modality (attribute `modality`):

- crossguard.classifier.duration        histogram s {modality, outcome}: one request, from
  validation to its result (queueing, model and evidence included). Its count is the number
  of requests (no separate counter: one record per request is cheaper), by outcome: ok,
  invalid (bad input or a limit), overloaded (queue full), not_ready, model_error, cancelled
  (the caller went away) or error (unexpected)
- crossguard.classifier.batch.size      histogram {item} {modality}: items per model call of the
  micro-batcher
- crossguard.classifier.batch.duration  histogram s {modality}: one model call
- crossguard.classifier.queue.depth     observable gauge {item} {modality}: items waiting for
  the model

Recorded through the OpenTelemetry API: with no meter provider installed (tests, tools) every
instrument is a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from crossguard.core.errors import InvalidInput, ModelError, NotReady, Overloaded

_OUTCOMES: list[tuple[type[BaseException], str]] = [
    (InvalidInput, "invalid"),
    (Overloaded, "overloaded"),
    (NotReady, "not_ready"),
    (ModelError, "model_error"),
    (asyncio.CancelledError, "cancelled"),
]

# Request durations: a few ms (a short text on a GPU) to tens of seconds (a long text with
# evidence under load); the SDK's default buckets are for milliseconds.
_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]
_BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256]


def outcome_of(exc: BaseException | None) -> str:
    """The `outcome` attribute of a request that ended with `exc` (None: it succeeded)."""
    if exc is None:
        return "ok"
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "error"


class ClassifierMetrics:
    def __init__(self, modality: str, meter: metrics.Meter | None = None) -> None:
        meter = meter or metrics.get_meter("crossguard.classifier")
        self.modality = modality
        self._attributes = {"modality": modality}
        # One attribute set per outcome, built once (they are recorded on every request).
        self._by_outcome: dict[str, dict[str, str]] = {}
        self._duration = meter.create_histogram(
            "crossguard.classifier.duration",
            unit="s",
            description="Time to classify one request (queueing, model and evidence), by "
            "outcome; its count is the number of requests",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._batch_size = meter.create_histogram(
            "crossguard.classifier.batch.size",
            unit="{item}",
            description="Items per model call of the micro-batcher",
            explicit_bucket_boundaries_advisory=_BATCH_BUCKETS,
        )
        self._batch_duration = meter.create_histogram(
            "crossguard.classifier.batch.duration",
            unit="s",
            description="Time of one model call",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self._queue_depth: Callable[[], int] | None = None
        meter.create_observable_gauge(
            "crossguard.classifier.queue.depth",
            callbacks=[self._observe_queue],
            unit="{item}",
            description="Items waiting for the model",
        )

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Report `depth()` as the queue depth from now on."""
        self._queue_depth = depth

    def request(self, seconds: float, exc: BaseException | None = None) -> None:
        """One request ended after `seconds`, with `exc` or successfully."""
        outcome = outcome_of(exc)
        attributes = self._by_outcome.get(outcome)
        if attributes is None:
            attributes = self._by_outcome[outcome] = {**self._attributes, "outcome": outcome}
        self._duration.record(seconds, attributes)

    def batch(self, size: int, seconds: float) -> None:
        """One model call of `size` items took `seconds` (called from the batcher's threads)."""
        self._batch_size.record(size, self._attributes)
        self._batch_duration.record(seconds, self._attributes)

    def _observe_queue(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._queue_depth is not None:
            yield Observation(self._queue_depth(), self._attributes)
