"""The review service's supervision of its loops: a consumer, outbox or retention loop that
ends (with an error or not) stops the web server and fails the process, instead of leaving a
service that answers /readyz while it no longer consumes."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import CommitFailedError

from crossguard.review.service import LoopTaskEnded, supervise


async def _forever() -> None:
    await asyncio.sleep(3600)


async def _commit_fails() -> None:
    await asyncio.sleep(0)
    raise CommitFailedError()


async def _returns() -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize("ending", [_commit_fails, _returns], ids=["raises", "returns"])
async def test_an_ended_loop_stops_the_web_server_and_raises(ending: object) -> None:
    stopped = asyncio.Event()
    web = asyncio.create_task(stopped.wait(), name="web")
    outbox = asyncio.create_task(_forever(), name="outbox")
    consumer = asyncio.create_task(ending(), name="consumer")  # type: ignore[operator]
    with pytest.raises(LoopTaskEnded, match="consumer"):
        await supervise(web, [outbox, consumer], stopped.set)  # type: ignore[arg-type]
    assert web.done() and not web.cancelled()  # stopped gracefully, not cancelled
    assert not outbox.done()  # the caller's finally cancels the rest
    outbox.cancel()


async def test_the_web_server_ending_returns_normally() -> None:
    web = asyncio.create_task(_returns(), name="web")
    loop = asyncio.create_task(_forever(), name="outbox")
    await supervise(web, [loop], lambda: None)
    assert not loop.done()
    loop.cancel()
