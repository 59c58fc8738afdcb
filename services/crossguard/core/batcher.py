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
from typing import Generic, TypeVar

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
            _, fut = self._queue.get_nowait()
            if not fut.done():
                fut.set_exception(Overloaded("batcher stopped"))

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

    async def _collect(self) -> list[tuple[InT, asyncio.Future[OutT]]]:
        batch = [await self._queue.get()]
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
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._collect()
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                outputs = await asyncio.to_thread(self._predict, [item for item, _ in live])
            except Exception as exc:  # propagate to every caller in the batch
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            if len(outputs) != len(live):
                err = RuntimeError(f"predict returned {len(outputs)} outputs for {len(live)}")
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            self._batches += 1
            self._items += len(live)
            for (_, fut), out in zip(live, outputs, strict=True):
                if not fut.done():
                    fut.set_result(out)
