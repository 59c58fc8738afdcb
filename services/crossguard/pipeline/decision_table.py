"""The durable decision store: a faust table of the first ModerationDecision per (content id,
policy version), backed by its changelog topic.

The table is partitioned like the content topic (a key's changelog record goes to the
partition of the content record that made it), so the worker that owns a content partition
holds its decisions, and faust rebuilds them from the changelog after a crash, a restart or a
rebalance before that partition is consumed again. put() waits for the broker to acknowledge
the changelog record before the decision is emitted: a decision that reached the decisions
topic is always in the table.

Retention: the changelog topic has cleanup.policy compact,delete and retention.ms set from
CROSSGUARD_DECISION_RETENTION_S, so the broker drops old decisions; prune() drops them from the
worker's copy (without tombstones: the broker deletes the records by itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.types import EventT

from crossguard.pipeline.dedupe import StoreFault, store_key
from crossguard.v1 import decision_pb2

TABLE_NAME = "first-decisions"


def transient(exc: BaseException) -> bool:
    """A send that may succeed later: the broker unreachable, timing out or between leaders
    (aiokafka marks most such errors retriable; its KafkaTimeoutError, what a send waiting for
    an absent broker raises, is not marked)."""
    if isinstance(exc, KafkaTimeoutError | TimeoutError | OSError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


def changelog_topic_name(app_id: str) -> str:
    """faust's own naming for a table's changelog."""
    return f"{app_id}-{TABLE_NAME}-changelog"


class TableDecisionStore:
    def __init__(
        self,
        app: faust.App,
        *,
        partitions: int,
        retention_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention_s = retention_s
        self.clock = clock
        # Key → when it was written (by this worker, or as the changelog says on recovery).
        self._written: dict[bytes, float] = {}
        changelog = app.topic(
            changelog_topic_name(app.conf.id),
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            retention=retention_s or None,
            compacting=True,
            deleting=retention_s > 0,
            internal=True,
            allow_empty=True,
            maxsize=131_072,  # as faust's own changelogs: a large buffer for recovery
        )
        self.table: Any = app.Table(
            TABLE_NAME,
            key_type=bytes,
            value_type=bytes,
            partitions=partitions,
            changelog_topic=changelog,
            on_changelog_event=self._on_changelog_event,
            help="The first decision per (content id, policy version).",
        )

    async def get(
        self, content_id: str, policy_version: str
    ) -> decision_pb2.ModerationDecision | None:
        key = store_key(content_id, policy_version)
        raw = self.table.data.get(key)
        if raw is None or self._expired(key):
            return None
        return decision_pb2.ModerationDecision.FromString(raw)

    async def put(self, decision: decision_pb2.ModerationDecision) -> None:
        """Must run while the content record is being processed (its partition is the
        changelog partition)."""
        key = store_key(decision.content_id, decision.policy_version)
        value = decision.SerializeToString()
        partition = self.table.partition_for_key(key)
        self.table.data[key] = value
        self._written[key] = self.clock()
        try:
            await self.table.send_changelog(partition, key, value)
        except Exception as exc:
            # Not durable: forget it, or a retry would find it and re-emit a decision that a
            # restart (rebuilding from the changelog) no longer has.
            self.table.data.pop(key, None)
            self._written.pop(key, None)
            if transient(exc):
                raise StoreFault(f"changelog send failed: {type(exc).__name__}: {exc}") from exc
            raise

    def prune(self) -> int:
        """Forget decisions past retention; returns how many."""
        if self.retention_s <= 0:
            return 0
        old = [k for k in self._written if self._expired(k)]
        for key in old:
            del self._written[key]
            self.table.data.pop(key, None)
        return len(old)

    def _expired(self, key: bytes) -> bool:
        written = self._written.get(key)
        return (
            self.retention_s > 0
            and written is not None
            and written < self.clock() - self.retention_s
        )

    async def _on_changelog_event(self, event: EventT[bytes]) -> None:
        key = event.message.key
        if not isinstance(key, bytes):
            return
        if event.message.value is None:
            self._written.pop(key, None)
        else:
            self._written[key] = event.message.timestamp or self.clock()
