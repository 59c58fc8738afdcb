"""A coalescing ClassifierService client: concurrent per-item `Classify` calls go out as
ClassifyBatch calls, so that a caller with many items in flight (the pipeline's concurrent
agents) sends batches without being restructured around them.

`await client.Classify(request, timeout=...)` looks like the generated stub's unary call: it
returns the item's ClassifyResponse or raises grpc.aio.AioRpcError (an item's own error from
the batch arrives as ItemError, a subclass carrying the item's status code and message). Items
are held until `max_items` are waiting or `max_delay` has passed since the first of them, then
sent in one ClassifyBatch call on the next stub from `stubs()` (a pool handing out its
connections in turn spreads batches over the server processes behind one address). Items with
different timeouts go in different batches: a batch's deadline is the earliest of its items'
deadlines (each counted from its own Classify call), so no item waits longer than it asked.
Against a server without ClassifyBatch (UNIMPLEMENTED) the client falls back to one unary call
per item from then on; the items of every batch answered UNIMPLEMENTED (several may be in
flight when the first answer arrives) are sent again as unary calls.

Tracing: each batch call runs in a span "classify batch" in the trace of the item that opened
the batch, linked to the span of every item in it (OpenTelemetry span links), so each item's
trace leads to the call that classified it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import trace

from crossguard.v1 import classifier_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("crossguard.serving.batch_client")

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class ItemError(grpc.aio.AioRpcError):  # type: ignore[misc]
    """One item's error from a ClassifyBatch answer, as a unary call would have raised it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def item_error(error: classifier_pb2.ClassifyError) -> ItemError:
    return ItemError(_CODES.get(error.code, grpc.StatusCode.UNKNOWN), error.message)


@dataclass
class _Waiting:
    request: classifier_pb2.ClassifyRequest
    future: asyncio.Future[classifier_pb2.ClassifyResponse]
    deadline: float | None  # loop time
    span: trace.SpanContext  # the caller's span, linked from the batch call's


@dataclass
class _Group:
    items: list[_Waiting] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class BatchingClassifierClient:
    """See the module docstring. `stubs()` returns a ClassifierServiceStub (a new one per batch
    is fine); `max_items` ≥ 1; `max_delay` in seconds."""

    def __init__(self, stubs: Callable[[], Any], *, max_items: int, max_delay: float) -> None:
        if max_items < 1 or max_delay < 0:
            raise ValueError("max_items >= 1 and max_delay >= 0 required")
        self._stubs = stubs
        self.max_items = max_items
        self.max_delay = max_delay
        self._groups: dict[float | None, _Group] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._unary = False  # the server has no ClassifyBatch
        self.batches = 0  # ClassifyBatch calls sent (for tests and benches)
        self.items = 0

    async def Classify(  # the stub's name: callers need not change
        self,
        request: classifier_pb2.ClassifyRequest,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> classifier_pb2.ClassifyResponse:
        if self._unary:
            response: classifier_pb2.ClassifyResponse = await self._stubs().Classify(
                request, timeout=timeout
            )
            return response
        loop = asyncio.get_running_loop()
        future: asyncio.Future[classifier_pb2.ClassifyResponse] = loop.create_future()
        deadline = None if timeout is None else loop.time() + timeout
        group = self._groups.get(timeout)
        if group is None:
            group = self._groups[timeout] = _Group()
        span = trace.get_current_span().get_span_context()
        group.items.append(_Waiting(request, future, deadline, span))
        if len(group.items) >= self.max_items:
            self._flush(timeout)
        elif group.timer is None:
            group.timer = loop.call_later(self.max_delay, self._flush, timeout)
        return await future

    def _flush(self, key: float | None) -> None:
        group = self._groups.pop(key, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        task = asyncio.ensure_future(self._send(group.items))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, waiting: list[_Waiting]) -> None:
        live = [w for w in waiting if not w.future.done()]  # callers that went away cost nothing
        if not live:
            return
        loop = asyncio.get_running_loop()
        deadlines = [w.deadline for w in live if w.deadline is not None]
        timeout = max(0.0, min(deadlines) - loop.time()) if deadlines else None
        batch = classifier_pb2.ClassifyBatchRequest(requests=[w.request for w in live])
        self.batches += 1
        self.items += len(live)
        links = [trace.Link(w.span) for w in live if w.span.is_valid]
        try:
            with tracer.start_as_current_span(
                "classify batch", links=links, attributes={"crossguard.batch.items": len(live)}
            ):
                response: classifier_pb2.ClassifyBatchResponse = await self._stubs().ClassifyBatch(
                    batch, timeout=timeout
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # Every batch answered so falls back, not only the first: others may have been
                # in flight when the first answer came back.
                if not self._unary:
                    log.warning("the classifier has no ClassifyBatch; sending one call per item")
                    self._unary = True
                await asyncio.gather(*(self._relay_unary(w, loop) for w in live))
                return
            _fail(live, exc)
            return
        except Exception as exc:  # handed to every caller of the batch
            _fail(live, exc)
            return
        except asyncio.CancelledError:
            _fail(live, ItemError(grpc.StatusCode.CANCELLED, "the batching client closed"))
            raise
        if len(response.results) != len(live):
            message = f"ClassifyBatch answered {len(response.results)} results for {len(live)}"
            _fail(live, ItemError(grpc.StatusCode.INTERNAL, message))
            return
        for w, result in zip(live, response.results, strict=True):
            if w.future.done():
                continue
            if result.WhichOneof("outcome") == "response":
                w.future.set_result(result.response)
            else:
                w.future.set_exception(item_error(result.error))

    async def _relay_unary(self, w: _Waiting, loop: asyncio.AbstractEventLoop) -> None:
        timeout = None if w.deadline is None else max(0.0, w.deadline - loop.time())
        try:
            response = await self._stubs().Classify(w.request, timeout=timeout)
        except Exception as exc:  # the caller's own outcome
            _fail([w], exc)
            return
        if not w.future.done():
            w.future.set_result(response)

    async def close(self) -> None:
        """Send what is waiting and wait for every batch in flight."""
        for key in list(self._groups):
            self._flush(key)
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _fail(waiting: list[_Waiting], exc: BaseException) -> None:
    for w in waiting:
        if not w.future.done():
            w.future.set_exception(exc)
