"""answer_in_order: request order kept whatever the completion order, bounded work in flight,
failures and early exits (plain asyncio, no I/O)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from crossguard.core.ordered_stream import StreamStopped, answer_in_order

pytestmark = pytest.mark.unit


async def numbers(n: int, fail_at: int | None = None) -> AsyncIterator[int]:
    for i in range(n):
        if i == fail_at:
            raise ConnectionResetError("client went away")
        yield i
        await asyncio.sleep(0)


async def test_answers_in_request_order_when_later_ones_finish_first() -> None:
    async def handle(i: int) -> str:
        await asyncio.sleep(0.001 * (10 - i))  # the last request finishes first
        return f"r{i}"

    got = [r async for r in answer_in_order(numbers(10), handle, max_in_flight=10)]
    assert got == [f"r{i}" for i in range(10)]


async def test_at_most_max_in_flight_are_handled_at_once() -> None:
    running = peak = 0

    async def handle(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        return i

    got = [r async for r in answer_in_order(numbers(50), handle, max_in_flight=4)]
    assert got == list(range(50))
    assert peak == 4


async def test_requests_in_flight_run_concurrently() -> None:
    started: list[int] = []
    release = asyncio.Event()

    async def handle(i: int) -> int:
        started.append(i)
        await release.wait()
        return i

    stream = answer_in_order(numbers(8), handle, max_in_flight=8)
    first = asyncio.ensure_future(stream.__anext__())
    for _ in range(50):
        await asyncio.sleep(0)
    assert started == list(range(8))  # all eight in flight before the first is answered
    release.set()
    assert await first == 0
    assert [r async for r in stream] == list(range(1, 8))


async def test_a_read_failure_ends_the_stream_after_the_answers_before_it() -> None:
    async def handle(i: int) -> int:
        return i

    got: list[int] = []
    with pytest.raises(ConnectionResetError):
        async for r in answer_in_order(numbers(10, fail_at=3), handle, max_in_flight=2):
            got.append(r)
    assert got == [0, 1, 2]


async def test_a_handler_exception_ends_the_stream() -> None:
    async def handle(i: int) -> int:
        if i == 2:
            raise RuntimeError("bug")
        return i

    with pytest.raises(RuntimeError, match="bug"):
        _ = [r async for r in answer_in_order(numbers(5), handle, max_in_flight=1)]


async def test_closing_early_cancels_unfinished_work_and_stops_reading() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def handle(i: int) -> int:
        started.append(i)
        try:
            await asyncio.sleep(0 if i == 0 else 10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        return i

    stream = answer_in_order(numbers(100), handle, max_in_flight=4)
    assert await stream.__anext__() == 0
    await stream.aclose()
    for _ in range(5):
        await asyncio.sleep(0)
    assert len(started) > 1 and sorted(cancelled) == started[1:]
    n = len(started)
    await asyncio.sleep(0.01)
    assert len(started) == n  # nothing more is read


async def test_max_in_flight_must_be_positive() -> None:
    async def handle(i: int) -> int:
        return i

    with pytest.raises(ValueError, match="at least 1"):
        await answer_in_order(numbers(1), handle, max_in_flight=0).__anext__()


async def test_reads_no_more_than_max_in_flight_ahead_of_the_answers() -> None:
    read: list[int] = []
    release = asyncio.Event()

    async def counted(n: int) -> AsyncIterator[int]:
        for i in range(n):
            read.append(i)
            yield i

    async def handle(i: int) -> int:
        await release.wait()
        return i

    stream = answer_in_order(counted(10), handle, max_in_flight=3)
    first = asyncio.ensure_future(stream.__anext__())
    for _ in range(20):
        await asyncio.sleep(0)
    assert read == [0, 1, 2]  # a fourth request is not even read
    release.set()
    assert await first == 0
    assert [r async for r in stream] == list(range(1, 10))


async def test_stop_answers_what_was_read_then_raises_stream_stopped() -> None:
    client_idle = asyncio.Event()  # never set: the client sends 5 requests, then waits

    async def requests() -> AsyncIterator[int]:
        for i in range(5):
            yield i
        await client_idle.wait()

    async def handle(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    stop = asyncio.Event()
    got: list[int] = []
    with pytest.raises(StreamStopped):
        async for r in answer_in_order(requests(), handle, max_in_flight=8, stop=stop):
            got.append(r)
            if r == 1:
                stop.set()  # the reader is waiting on the idle client: it is cancelled
    assert got == [0, 1, 2, 3, 4]
