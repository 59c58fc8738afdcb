"""De-duplication: one decision per (content id, policy version).

- SingleFlight: concurrent copies of one item in this worker share the first copy's work.
- DecisionStore: the first decision per (content id, policy version); a repeat or a replay
  re-emits it instead of deciding again. MemoryDecisionStore is the in-process one (bounded,
  lost on restart); the worker uses the durable faust table (pipeline.decision_table).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

from crossguard.v1 import decision_pb2

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

log = logging.getLogger(__name__)


class SingleFlight(Generic[K, V]):
    """Concurrent calls with one key share the first caller's result."""

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, compute: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """(result, shared): shared is True when another caller computed it."""
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending), True
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not pending.cancelled() or (task is not None and task.cancelling()):
                    raise
                # Only the first caller was cancelled: compute it ourselves.
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await compute()
            future.set_result(value)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved; a waiting caller re-raises it
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        return value, False


class StoreFault(Exception):
    """A transient failure of a decision store (its broker or storage is unavailable): the
    operation may succeed when tried again. Stores raise it from the underlying error; any
    other error from a store is a bug or a permanent fault (the item is dead-lettered)."""


class DecisionStoreUnavailable(Exception):
    """The decision store kept failing with StoreFault (not the item's fault): the item is
    neither decided nor dead-lettered, and must not be committed."""


_BACKOFF_MAX_S = 5.0


async def with_retries(
    operation: Callable[[], Awaitable[V]], *, what: str, attempts: int, backoff_s: float
) -> V:
    """`operation` tried up to `attempts` times while it raises StoreFault, waiting `backoff_s`
    (doubling, at most 5 s) between tries; then DecisionStoreUnavailable from the last one."""
    wait = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except StoreFault as exc:
            if attempt == attempts:
                raise DecisionStoreUnavailable(
                    f"decision store {what} failed {attempts} times: {type(exc).__name__}: {exc}"
                ) from exc
            log.warning(
                "decision store %s failed; retrying",
                what,
                extra={"attempt": attempt, "error": f"{type(exc).__name__}: {exc}"},
            )
            await asyncio.sleep(wait)
            wait = min(wait * 2, _BACKOFF_MAX_S)
    raise AssertionError("unreachable")  # attempts >= 1


def store_key(content_id: str, policy_version: str) -> bytes:
    return f"{content_id}\n{policy_version}".encode()


class DecisionStore(Protocol):
    async def get(
        self, content_id: str, policy_version: str
    ) -> decision_pb2.ModerationDecision | None:
        """The first decision kept for the pair, if any (and not past retention)."""
        ...

    async def put(self, decision: decision_pb2.ModerationDecision) -> None:
        """Keep `decision` (durably, when the store is durable) before it is emitted."""
        ...


def expired(decision: decision_pb2.ModerationDecision, now_s: float, retention_s: float) -> bool:
    return retention_s > 0 and decision.decided_at.seconds < now_s - retention_s


class MemoryDecisionStore:
    """In-process store: the most recent `max_entries` decisions within `retention_s`
    (0: no limit). Lost on restart; for tests and for a worker without durable state."""

    def __init__(self, max_entries: int, retention_s: float, clock: Callable[[], float]) -> None:
        self.max_entries = max_entries
        self.retention_s = retention_s
        self.clock = clock
        self._data: OrderedDict[bytes, decision_pb2.ModerationDecision] = OrderedDict()

    async def get(
        self, content_id: str, policy_version: str
    ) -> decision_pb2.ModerationDecision | None:
        key = store_key(content_id, policy_version)
        decision = self._data.get(key)
        if decision is None:
            return None
        if expired(decision, self.clock(), self.retention_s):
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return decision

    async def put(self, decision: decision_pb2.ModerationDecision) -> None:
        if self.max_entries <= 0:
            return
        key = store_key(decision.content_id, decision.policy_version)
        self._data.setdefault(key, decision)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
