"""MicroBatcher: coalescing, max_delay, error propagation, back-pressure, stop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

import pytest

from crossguard.core.batcher import MicroBatcher
from crossguard.core.errors import Overloaded

pytestmark = pytest.mark.unit


class Recorder:
    """A predict function that records the batches it receives; can be gated or made to fail."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail_on = fail_on
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [i * 10 for i in items]


BatcherFactory = Callable[..., tuple[MicroBatcher[int, int], Recorder]]


@pytest.fixture
async def make_batcher() -> object:
    made: list[MicroBatcher[int, int]] = []

    def make(
        *, fail_on: int | None = None, **kwargs: object
    ) -> tuple[MicroBatcher[int, int], Recorder]:
        rec = Recorder(fail_on)
        b: MicroBatcher[int, int] = MicroBatcher(rec, **kwargs)  # type: ignore[arg-type]
        made.append(b)
        return b, rec

    yield make
    for b in made:
        await b.stop()


async def test_results_in_order_for_each_caller(make_batcher: BatcherFactory) -> None:
    b, _ = make_batcher(max_batch=4, max_delay=0.01)
    results = await asyncio.gather(*(b.submit(i) for i in range(10)))
    assert results == [i * 10 for i in range(10)]
    assert await b.submit_many([1, 2, 3]) == [10, 20, 30]


async def test_concurrent_submissions_coalesce(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=8, max_delay=0.05)
    await asyncio.gather(*(b.submit(i) for i in range(8)))
    assert rec.batches == [list(range(8))]
    assert b.stats.batches == 1 and b.stats.items == 8 and b.stats.mean_batch == 8.0


async def test_max_batch_is_respected(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=3, max_delay=0.05)
    await asyncio.gather(*(b.submit(i) for i in range(10)))
    assert all(len(batch) <= 3 for batch in rec.batches)
    assert sorted(i for batch in rec.batches for i in batch) == list(range(10))


async def test_lone_item_is_not_held_forever(make_batcher: BatcherFactory) -> None:
    # max_delay bounds the wait for company: a single request completes on its own.
    b, rec = make_batcher(max_batch=64, max_delay=0.02)
    assert await asyncio.wait_for(b.submit(7), timeout=5) == 70
    assert rec.batches == [[7]]


async def test_zero_delay_still_drains_waiting_items(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=16, max_delay=0.0)
    rec.gate.clear()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(rec.entered.wait, 5)
    rest = [asyncio.ensure_future(b.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    rec.gate.set()
    await asyncio.gather(first, *rest)
    # Items queued while the first batch ran go together in the next one.
    assert rec.batches == [[0], [1, 2, 3, 4, 5]]


async def test_exception_propagates_to_every_caller_in_batch(
    make_batcher: BatcherFactory,
) -> None:
    b, _ = make_batcher(max_batch=8, max_delay=0.05, fail_on=3)
    results = await asyncio.gather(*(b.submit(i) for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, ValueError) and "bad item 3" in str(r) for r in results)
    # The worker survives and serves later requests.
    assert await b.submit(1) == 10


async def test_wrong_output_count_is_an_error(make_batcher: BatcherFactory) -> None:
    b: MicroBatcher[int, int] = MicroBatcher(lambda items: [1], max_batch=4, max_delay=0.05)
    try:
        with pytest.raises(RuntimeError, match="1 outputs for 2"):
            await asyncio.gather(b.submit(1), b.submit(2))
    finally:
        await b.stop()


async def test_full_queue_raises_overloaded(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=1, max_delay=0.0, max_queue=2)
    rec.gate.clear()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(rec.entered.wait, 5)  # worker busy, queue empty
    queued = [asyncio.ensure_future(b.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0)
    with pytest.raises(Overloaded, match="queue is full"):
        await b.submit(3)
    rec.gate.set()
    assert await asyncio.gather(first, *queued) == [0, 10, 20]


async def test_stop_fails_waiting_callers(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=1, max_delay=0.0)
    rec.gate.clear()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(rec.entered.wait, 5)
    waiting = asyncio.ensure_future(b.submit(1))
    await asyncio.sleep(0)
    rec.gate.set()
    await b.stop()
    with pytest.raises(Overloaded, match="stopped"):
        await waiting
    # The batch that was running when stop() came is finished and answered, not left hanging.
    assert await asyncio.wait_for(first, 5) == 0


async def test_cancelled_caller_is_skipped(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=8, max_delay=0.05)
    doomed = asyncio.ensure_future(b.submit(99))
    await asyncio.sleep(0)
    doomed.cancel()
    assert await b.submit(1) == 10
    assert 99 not in [i for batch in rec.batches for i in batch]


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_batch=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda x: x, max_delay=-1)


async def test_submit_during_stop_is_refused_and_a_second_stop_joins(
    make_batcher: BatcherFactory,
) -> None:
    b, rec = make_batcher(max_batch=1, max_delay=0.0)
    rec.gate.clear()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(rec.entered.wait, 5)
    stopping = asyncio.ensure_future(b.stop())
    await asyncio.sleep(0.05)  # the stop is waiting for the batch in flight
    with pytest.raises(Overloaded, match="stopping"):
        await b.submit(1)
    again = asyncio.ensure_future(b.stop())
    rec.gate.set()
    await asyncio.wait_for(asyncio.gather(stopping, again), 5)
    assert await first == 0


async def test_restarts_after_stop(make_batcher: BatcherFactory) -> None:
    b, _ = make_batcher(max_batch=4, max_delay=0.0)
    assert await b.submit(1) == 10
    await b.stop()
    assert await asyncio.wait_for(b.submit(2), 5) == 20


async def test_base_exceptions_from_predict_reach_the_callers() -> None:
    def predict(items: Sequence[int]) -> list[int]:
        raise SystemExit("model went away")

    b: MicroBatcher[int, int] = MicroBatcher(predict, max_batch=2, max_delay=0.0)
    try:
        with pytest.raises(RuntimeError, match="model went away"):
            await asyncio.wait_for(b.submit(1), 5)
        with pytest.raises(RuntimeError):  # the worker survived to answer again
            await asyncio.wait_for(b.submit(2), 5)
    finally:
        await b.stop()


async def test_on_batch_sees_every_model_call_and_cannot_break_the_worker(
    make_batcher: BatcherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[tuple[int, float]] = []
    second = threading.Event()

    def on_batch(size: int, seconds: float) -> None:
        calls.append((size, seconds))
        if len(calls) == 2:
            second.set()
        raise RuntimeError("metrics exporter misconfigured")

    b, rec = make_batcher(max_batch=8, max_delay=0.05, on_batch=on_batch)
    assert await asyncio.gather(*(b.submit(i) for i in range(8))) == [i * 10 for i in range(8)]
    assert await asyncio.wait_for(b.submit(9), timeout=10) == 90  # the same worker goes on
    # The hook runs after the results are handed back: wait for the second call.
    assert await asyncio.to_thread(second.wait, 10)
    assert [size for size, _ in calls] == [len(batch) for batch in rec.batches] == [8, 1]
    assert all(seconds >= 0 for _, seconds in calls)
    assert "on_batch hook failed" in caplog.text


async def test_queued_counts_items_waiting_for_a_worker(make_batcher: BatcherFactory) -> None:
    b, rec = make_batcher(max_batch=2)
    rec.gate.clear()
    first = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(rec.entered.wait, 10)
    waiting = [asyncio.ensure_future(b.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    assert b.queued == 3
    rec.gate.set()
    await asyncio.gather(first, *waiting)
    assert b.queued == 0
