"""Micro-batcher: coalesces concurrent single requests into model batches.

Callers on the event loop `await batcher.submit(item)`. Each of `workers` dedicated threads
blocks on a thread-safe queue, takes up to `max_batch` items (waiting at most `max_delay` after
the first one for company), runs the blocking `predict` and hands the results back to the loop
in one `call_soon_threadsafe` per batch. Back-pressure: more than `max_queue` waiting items
raise Overloaded.

Why threads and not asyncio tasks around `asyncio.to_thread`: per batch, the task version paid
an asyncio.Queue wake-up per item, a `wait_for` per item, an executor hand-off and a loop
round-trip before the next batch could start; with an int8 encoder a batch of 8 short texts
takes ~25 ms, so that overhead left the model idle. Measured on 2 CPU cores, in-process, 16
concurrent callers, batch cap 8: 486 items/s with tasks (see `crossguard bench text` for the
figures of this version).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crossguard.core.errors import Overloaded

log = logging.getLogger(__name__)

InT = TypeVar("InT")
OutT = TypeVar("OutT")

# What a worker thread takes off the queue: an item with its caller's future, or None (stop).
_Job = tuple[Any, "asyncio.Future[Any]"]


@dataclass(frozen=True)
class BatchStats:
    batches: int
    items: int

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[InT, OutT]):
    def __init__(
        self,
        predict: Callable[[Sequence[InT]], Sequence[OutT]],
        *,
        max_batch: int = 32,
        max_delay: float = 0.005,
        max_queue: int = 4096,
        workers: int = 1,
        name: str = "batcher",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        """`on_batch(size, seconds)` is called from the worker thread after every model call
        (metrics; it must be quick and thread-safe)."""
        if max_batch < 1 or max_delay < 0 or workers < 1 or max_queue < 1:
            raise ValueError(
                "max_batch >= 1, max_delay >= 0, max_queue >= 1 and workers >= 1 required"
            )
        self._predict = predict
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queue = max_queue
        self._workers = workers
        self._name = name
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._batches = 0
        self._items = 0

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._items)

    @property
    def queued(self) -> int:
        """Items waiting for a worker (approximate, as any queue size read by another thread)."""
        return self._queue.qsize()

    def start(self) -> None:
        """Start the worker threads; results are delivered to the running event loop. Workers
        left from another (closed) loop or dead are replaced."""
        loop = asyncio.get_running_loop()
        if self._stopping:
            raise Overloaded("batcher is stopping")
        if self._threads and loop is self._loop and all(t.is_alive() for t in self._threads):
            return
        self._loop = loop
        self._threads = [
            threading.Thread(target=self._run, name=f"{self._name}-{k}", daemon=True)
            for k in range(self._workers)
        ]
        for thread in self._threads:
            thread.start()

    async def stop(self) -> None:
        """Fail the waiting callers, let every batch in flight finish and answer its callers,
        then end the threads. Submissions during the stop are refused (Overloaded); a second
        stop waits for the same threads."""
        threads = [t for t in self._threads if t.is_alive()]
        first = not self._stopping
        self._stopping = True
        try:
            if first:
                self._fail_waiting()
                for _ in threads:
                    self._queue.put(None)
            for thread in threads:
                await asyncio.to_thread(thread.join)
            # Deliveries were queued on the loop before the threads ended; let them run.
            await asyncio.sleep(0)
        finally:
            if first:
                self._threads = []
                self._fail_waiting(drop_stops=True)
                self._stopping = False

    async def submit(self, item: InT) -> OutT:
        if self._stopping:
            raise Overloaded("model batcher is stopping; retry later")
        self.start()
        if self._queue.qsize() >= self.max_queue:
            raise Overloaded("model queue is full; retry later")
        fut: asyncio.Future[OutT] = asyncio.get_running_loop().create_future()
        self._queue.put((item, fut))
        return await fut

    async def submit_many(self, items: Sequence[InT]) -> list[OutT]:
        """Score `items` (in order), each queued as its own job so that they fill model calls
        with other callers' items. One future per item and no task or coroutine: a batch of 64
        texts costs a few microseconds per item here. Refused whole (Overloaded) when the queue
        cannot take them all."""
        if not items:
            return []
        if self._stopping:
            raise Overloaded("model batcher is stopping; retry later")
        self.start()
        if self._queue.qsize() + len(items) > self.max_queue:
            raise Overloaded("model queue is full; retry later")
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[OutT]] = []
        put = self._queue.put
        for item in items:
            fut: asyncio.Future[OutT] = loop.create_future()
            futures.append(fut)
            put((item, fut))
        return list(await asyncio.gather(*futures))

    # --- worker threads ----------------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        """The next batch, or None when stopping."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        deadline = time.monotonic() + self.max_delay
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:  # a stop: leave it for this thread's next _take
                self._queue.put(None)
                break
            batch.append(job)
        return batch

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            batch = self._take()
            if batch is None:
                return
            # A caller that went away (cancelled) costs no model work.
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            started = time.perf_counter()
            try:
                outputs: Sequence[OutT] | BaseException = self._predict([i for i, _ in live])
            except Exception as exc:
                outputs = exc
            except BaseException as exc:  # SystemExit & co. would end the event loop if set
                outputs = RuntimeError(f"model call ended with {exc!r}")
            seconds = time.perf_counter() - started
            try:
                loop.call_soon_threadsafe(self._deliver, live, outputs)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return
            if self._on_batch is not None:
                try:
                    self._on_batch(len(live), seconds)
                except Exception:  # metrics must never stop the worker
                    log.exception("batcher on_batch hook failed", extra={"batcher": self._name})

    # --- on the event loop -------------------------------------------------------------------

    def _deliver(self, live: list[_Job], outputs: Sequence[OutT] | BaseException) -> None:
        if isinstance(outputs, BaseException):  # propagate to every caller in the batch
            _fail(live, outputs)
            return
        if len(outputs) != len(live):
            _fail(live, RuntimeError(f"predict returned {len(outputs)} outputs for {len(live)}"))
            return
        self._batches += 1
        self._items += len(live)
        for (_, fut), out in zip(live, outputs, strict=True):
            if not fut.done():
                fut.set_result(out)

    def _fail_waiting(self, drop_stops: bool = False) -> None:
        """Fail every queued caller; stop markers stay queued for the workers unless
        `drop_stops` (after the workers have ended)."""
        waiting: list[_Job] = []
        stops = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                stops += 1
            else:
                waiting.append(job)
        for _ in range(0 if drop_stops else stops):
            self._queue.put(None)
        _fail(waiting, Overloaded("batcher stopped"))


def _fail(batch: Sequence[_Job], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
