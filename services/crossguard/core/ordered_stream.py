"""Answering a stream of requests in order while working on several at once.

Used by the streaming gRPC methods: a client keeps many items in flight on one stream; the
items must reach the micro-batcher together (so they are batched) and their answers go back
in request order (so the client needs no correlation ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import TypeVar, cast

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_END = object()


async def answer_in_order(
    requests: AsyncIterable[Req],
    handle: Callable[[Req], Awaitable[Resp]],
    max_in_flight: int,
) -> AsyncIterator[Resp]:
    """Yield `await handle(r)` for every request r, in request order, with at most
    `max_in_flight` handled at once: reading pauses while that many are unanswered, so a
    client that sends faster than it reads is held back (by transport flow control) instead of
    growing the server's memory.

    `handle` should turn its own failures into answers; an exception it raises ends the stream
    (as does one raised while reading `requests`). When the consumer stops early (the client
    went away), reading stops and unfinished work is cancelled."""
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
    slots = asyncio.Semaphore(max_in_flight)
    order: asyncio.Queue[asyncio.Future[Resp] | object] = asyncio.Queue()

    async def read() -> None:
        try:
            async for request in requests:
                await slots.acquire()
                order.put_nowait(asyncio.ensure_future(handle(request)))
        finally:
            order.put_nowait(_END)

    reader = asyncio.ensure_future(read())
    try:
        while (item := await order.get()) is not _END:
            try:
                yield await cast("asyncio.Future[Resp]", item)
            finally:
                slots.release()
        await reader  # a failure while reading ends the stream with that error
    finally:
        reader.cancel()
        while not order.empty():
            left = order.get_nowait()
            if isinstance(left, asyncio.Future):
                left.cancel()
