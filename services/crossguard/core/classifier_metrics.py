"""Classifier service metrics (OpenTelemetry meter "crossguard.classifier"), for every modality
(attribute `modality`):

- crossguard.classifier.duration        histogram s {modality, outcome}: one request, from
  validation to its result (queueing, model and evidence included; a request rejected before
  that, e.g. one that does not parse, counts with 0 s). Its count is the number of
  requests (no separate counter: one record per request is cheaper), by outcome: ok, invalid
  (bad input or a limit), overloaded (model queue full, or the server is stopping), not_ready,
  model_error (the model is not usable), cancelled (the caller went away) or error (anything
  else, a failing model call included)
- crossguard.classifier.batch.size      histogram {item} {modality}: items per model call of the
  micro-batcher
- crossguard.classifier.call.items      histogram {item} {modality}: items per ClassifyBatch call
  (each item also counts as a request in crossguard.classifier.duration)
- crossguard.classifier.batch.duration  histogram s {modality}: one model call
- crossguard.classifier.queue.depth     observable gauge {item} {modality}: items waiting for
  the model, summed over the classifiers of that modality in the process

Recorded through the OpenTelemetry API: with no meter provider installed (tests, tools) every
instrument is a no-op. Instruments exist once per meter (a second registration of the same
name would be dropped by the SDK), and the queue gauge holds its sources weakly, so classifiers
come and go without leaking.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

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
_BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def outcome_of(exc: BaseException | None) -> str:
    """The `outcome` attribute of a request that ended with `exc` (None: it succeeded)."""
    if exc is None:
        return "ok"
    for kind, outcome in _OUTCOMES:
        if isinstance(exc, kind):
            return outcome
    return "error"


class _Instruments:
    """The instruments of one meter, and the classifiers whose queues its gauge reports."""

    def __init__(self, meter: metrics.Meter) -> None:
        self.duration = meter.create_histogram(
            "crossguard.classifier.duration",
            unit="s",
            description="Time to classify one request (queueing, model and evidence), by "
            "outcome; its count is the number of requests",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.batch_size = meter.create_histogram(
            "crossguard.classifier.batch.size",
            unit="{item}",
            description="Items per model call of the micro-batcher",
            explicit_bucket_boundaries_advisory=_BATCH_BUCKETS,
        )
        self.call_items = meter.create_histogram(
            "crossguard.classifier.call.items",
            unit="{item}",
            description="Items per ClassifyBatch call (each also counted as a request)",
            explicit_bucket_boundaries_advisory=_BATCH_BUCKETS,
        )
        self.batch_duration = meter.create_histogram(
            "crossguard.classifier.batch.duration",
            unit="s",
            description="Time of one model call",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.watched: weakref.WeakSet[ClassifierMetrics] = weakref.WeakSet()
        # Its own lock: the SDK runs _observe_queues under its collection lock, so taking the
        # module lock there (held while instruments are created, which takes the SDK's lock)
        # could deadlock.
        self.watched_lock = threading.Lock()
        meter.create_observable_gauge(
            "crossguard.classifier.queue.depth",
            callbacks=[self._observe_queues],
            unit="{item}",
            description="Items waiting for the model",
        )

    def _observe_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        with self.watched_lock:  # classifiers start and stop on other threads
            sources = list(self.watched)
        by_modality: dict[str, int] = {}
        for source in sources:
            depth = source.queue_depth()
            if depth is not None:
                by_modality[source.modality] = by_modality.get(source.modality, 0) + depth
        for modality, depth in by_modality.items():
            yield Observation(depth, {"modality": modality})


_by_meter: weakref.WeakKeyDictionary[metrics.Meter, _Instruments] = weakref.WeakKeyDictionary()
_default_meter: metrics.Meter | None = None
_lock = threading.Lock()  # _by_meter and _default_meter only


def _instruments(meter: metrics.Meter | None) -> _Instruments:
    global _default_meter
    with _lock:
        if meter is None:
            # One meter for the process: the API's proxy keeps every meter it hands out.
            if _default_meter is None:
                _default_meter = metrics.get_meter("crossguard.classifier")
            meter = _default_meter
        found = _by_meter.get(meter)
        if found is None:
            found = _by_meter[meter] = _Instruments(meter)
        return found


class ClassifierMetrics:
    """What one classifier records; `meter` defaults to the global provider's."""

    def __init__(self, modality: str, meter: metrics.Meter | None = None) -> None:
        self.modality = modality
        self._instruments = _instruments(meter)
        self._attributes = {"modality": modality}
        # One attribute set per outcome, built once (they are recorded on every request).
        self._by_outcome: dict[str, dict[str, str]] = {}
        self._queue_depth: Callable[[], int] | None = None

    def watch_queue(self, depth: Callable[[], int] | None) -> None:
        """Report `depth()` in the queue gauge from now on (None: stop reporting)."""
        self._queue_depth = depth
        with self._instruments.watched_lock:
            if depth is None:
                self._instruments.watched.discard(self)
            else:
                self._instruments.watched.add(self)

    def queue_depth(self) -> int | None:
        depth = self._queue_depth  # read once: a close on another thread may clear it
        return None if depth is None else depth()

    def request(self, seconds: float, exc: BaseException | None = None) -> None:
        """One request ended after `seconds`, with `exc` or successfully."""
        outcome = outcome_of(exc)
        attributes = self._by_outcome.get(outcome)
        if attributes is None:
            attributes = self._by_outcome[outcome] = {**self._attributes, "outcome": outcome}
        self._instruments.duration.record(seconds, attributes)

    @contextlib.contextmanager
    def rejections(self) -> Iterator[None]:
        """Count InvalidInput raised inside (a check before the classifier, such as parsing the
        request) as an invalid request of 0 s, and let it propagate."""
        try:
            yield
        except InvalidInput as exc:
            self.request(0.0, exc)
            raise

    def batch_call(self, items: int) -> None:
        """One ClassifyBatch call of `items` items arrived (each is also counted by request)."""
        self._instruments.call_items.record(items, self._attributes)

    def batch(self, size: int, seconds: float) -> None:
        """One model call of `size` items took `seconds` (called from the batcher's threads)."""
        self._instruments.batch_size.record(size, self._attributes)
        self._instruments.batch_duration.record(seconds, self._attributes)
