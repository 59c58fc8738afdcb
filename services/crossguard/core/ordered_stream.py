"""Answering a stream of requests in order while working on several at once.

Used by the streaming gRPC methods: a client keeps many items in flight on one stream; the
items must reach the micro-batcher together (so they are batched) and their answers go back
in request order (so the client needs no correlation ids).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import TypeVar, cast

Req = TypeVar("Req")
Resp = TypeVar("Resp")

_END = object()


class StreamStopped(Exception):
    """Reading stopped because the server is stopping; every request read was answered."""


async def answer_in_order(
    requests: AsyncIterable[Req],
    handle: Callable[[Req], Awaitable[Resp]],
    max_in_flight: int,
    stop: asyncio.Event | None = None,
) -> AsyncGenerator[Resp, None]:
    """Yield `await handle(r)` for every request r, in request order, with at most
    `max_in_flight` read and unanswered at once: reading waits for a free slot, so a client
    that sends faster than it reads is held back by transport flow control rather than by
    the server's memory (what the transport itself buffers is its own).

    `handle` should turn its own failures into answers; an exception it raises ends the stream
    (as does one raised while reading `requests`). When `stop` is set, reading stops (a read
    waiting for the client is cancelled), the requests already read are answered, and then
    StreamStopped is raised (also when the client had just half-closed and the reader had not
    yet seen it: harmless, as nothing was left to send). When the consumer stops early (the
    client went away), reading stops and unfinished work is cancelled."""
    if max_in_flight < 1:
        raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
    slots = asyncio.Semaphore(max_in_flight)
    order: asyncio.Queue[asyncio.Future[Resp] | object] = asyncio.Queue()

    async def read() -> None:
        try:
            iterator = aiter(requests)
            while True:
                await slots.acquire()
                try:
                    request = await anext(iterator)
                except StopAsyncIteration:
                    return
                order.put_nowait(asyncio.ensure_future(handle(request)))
        finally:
            order.put_nowait(_END)

    # The reader is scheduled before the watcher, so even an already-set `stop` cancels it
    # after its first step, whose `finally` queues _END (a task cancelled before its first
    # step would never run it, and this loop would wait forever).
    reader = asyncio.ensure_future(read())
    watcher = asyncio.ensure_future(stop.wait()) if stop is not None else None
    if watcher is not None:
        watcher.add_done_callback(lambda _: reader.cancel())
    try:
        while (item := await order.get()) is not _END:
            try:
                yield await cast("asyncio.Future[Resp]", item)
            finally:
                slots.release()
        await asyncio.wait({reader})
        if reader.cancelled():
            raise StreamStopped("the server is stopping")
        reader.result()  # a failure while reading ends the stream with that error
    finally:
        reader.cancel()
        if watcher is not None:
            watcher.cancel()
        while not order.empty():
            left = order.get_nowait()
            if isinstance(left, asyncio.Future):
                left.cancel()
