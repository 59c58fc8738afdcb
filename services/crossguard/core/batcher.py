"""Async micro-batcher: coalesces concurrent single requests into model batches.

Callers `await batcher.submit(item)`; a worker task collects up to `max_batch` items or waits
at most `max_delay` after the first one, runs the blocking `predict` in a thread, and resolves
each caller's future. Back-pressure: a bounded queue raises Overloaded when full.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crossguard.core.errors import Overloaded

InT = TypeVar("InT")
OutT = TypeVar("OutT")


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
    ) -> None:
        if max_batch < 1 or max_delay < 0 or workers < 1:
            raise ValueError("max_batch >= 1, max_delay >= 0 and workers >= 1 required")
        self._predict = predict
        self.max_batch = max_batch
        self.max_delay = max_delay
        self._queue: asyncio.Queue[tuple[InT, asyncio.Future[OutT]]] = asyncio.Queue(max_queue)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []
        # Model calls in flight (held so they are not garbage-collected while shielded).
        self._running: set[asyncio.Task[Sequence[OutT]]] = set()
        self._batches = 0
        self._items = 0

    @property
    def stats(self) -> BatchStats:
        return BatchStats(self._batches, self._items)

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            _fail([self._queue.get_nowait()], Overloaded("batcher stopped"))

    async def submit(self, item: InT) -> OutT:
        if not self._tasks:
            self.start()
        fut: asyncio.Future[OutT] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise Overloaded("model queue is full; retry later") from None
        return await fut

    async def submit_many(self, items: Sequence[InT]) -> list[OutT]:
        return list(await asyncio.gather(*(self.submit(i) for i in items)))

    async def _collect(self, batch: list[tuple[InT, asyncio.Future[OutT]]]) -> None:
        """Fill `batch` in place (so a stop can fail what was already taken off the queue)."""
        batch.append(await self._queue.get())
        deadline = time.monotonic() + self.max_delay
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                # Drain what is already waiting without sleeping.
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break

    async def _run(self) -> None:
        while True:
            batch: list[tuple[InT, asyncio.Future[OutT]]] = []
            try:
                await self._collect(batch)
            except asyncio.CancelledError:
                _fail(batch, Overloaded("batcher stopped"))
                raise
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            items = [item for item, _ in live]
            work = asyncio.create_task(asyncio.to_thread(self._predict, items))
            self._running.add(work)
            work.add_done_callback(self._running.discard)
            try:
                await asyncio.shield(work)
            except asyncio.CancelledError:
                # Stopping mid-batch: let the model call finish (the model is closed after the
                # batcher stops) and answer its callers, then stop.
                await asyncio.wait([work])
                self._deliver(live, work)
                raise
            except Exception:
                pass  # delivered to the callers below
            self._deliver(live, work)

    def _deliver(
        self, live: list[tuple[InT, asyncio.Future[OutT]]], work: asyncio.Future[Sequence[OutT]]
    ) -> None:
        exc = work.exception()
        if exc is not None:  # propagate to every caller in the batch
            _fail(live, exc)
            return
        outputs = work.result()
        if len(outputs) != len(live):
            _fail(live, RuntimeError(f"predict returned {len(outputs)} outputs for {len(live)}"))
            return
        self._batches += 1
        self._items += len(live)
        for (_, fut), out in zip(live, outputs, strict=True):
            if not fut.done():
                fut.set_result(out)


def _fail(batch: Sequence[tuple[object, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, fut in batch:
        if not fut.done():
            fut.set_exception(exc)
