"""Kafka topic names, explicit topic creation, and aiokafka client settings.

Topics are created explicitly (with retention declared) because brokers that auto-create
(tansu does, with 4 partitions) would otherwise pick partition counts and configs for us.
Switching from the embedded broker to a real cluster is a KafkaSettings change only.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from crossguard.core.settings import KafkaSettings

log = logging.getLogger(__name__)

DAY_MS = 24 * 60 * 60 * 1000

# Base names; KafkaSettings.topic_prefix is prepended.
CONTENT = "crossguard.content.v1"
CONTENT_DLQ = "crossguard.content.dlq.v1"
DECISIONS = "crossguard.decisions.v1"
REVIEW = "crossguard.review.v1"
FEEDBACK = "crossguard.feedback.v1"

RETENTION_MS: dict[str, int] = {
    CONTENT: 7 * DAY_MS,
    CONTENT_DLQ: 30 * DAY_MS,
    DECISIONS: 30 * DAY_MS,
    REVIEW: 30 * DAY_MS,
    FEEDBACK: 365 * DAY_MS,
}


@dataclass(frozen=True)
class Topics:
    """Fully qualified topic names for one deployment (prefix applied)."""

    content: str
    content_dlq: str
    decisions: str
    review: str
    feedback: str

    @classmethod
    def from_prefix(cls, prefix: str = "") -> Topics:
        return cls(
            content=prefix + CONTENT,
            content_dlq=prefix + CONTENT_DLQ,
            decisions=prefix + DECISIONS,
            review=prefix + REVIEW,
            feedback=prefix + FEEDBACK,
        )

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> Topics:
        return cls.from_prefix(settings.topic_prefix)

    def all(self) -> list[str]:
        return [self.content, self.content_dlq, self.decisions, self.review, self.feedback]

    def retention_ms(self, name: str) -> int:
        for base, ms in RETENTION_MS.items():
            if name.endswith(base):
                return ms
        return 7 * DAY_MS


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = str(settings.ssl_cafile) if settings.ssl_cafile else None
    context: ssl.SSLContext = create_ssl_context(cafile=cafile)
    return context


def client_kwargs(settings: KafkaSettings, bootstrap: str | None = None) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client (producer, consumer, admin).

    `bootstrap` overrides settings.bootstrap_servers (e.g. the embedded broker's address).
    """
    servers = bootstrap if bootstrap is not None else settings.bootstrap_servers
    if not servers:
        raise ValueError("no bootstrap servers: start the embedded broker or set them")
    kwargs: dict[str, Any] = {
        "bootstrap_servers": [s.strip() for s in servers.split(",") if s.strip()],
        "security_protocol": settings.security_protocol,
    }
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


async def create_topics(
    settings: KafkaSettings,
    bootstrap: str | None = None,
    names: list[str] | None = None,
    *,
    connect_timeout_s: float = 30.0,
) -> list[str]:
    """Create the Crossguard topics that do not exist yet; returns the names created.

    Partitions, replication and retention.ms come from settings / RETENTION_MS.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

    topics = Topics.from_settings(settings)
    wanted = names if names is not None else topics.all()
    admin = AIOKafkaAdminClient(**client_kwargs(settings, bootstrap), request_timeout_ms=10_000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout_s
    while True:
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            await admin.close()
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.2)
            admin = AIOKafkaAdminClient(
                **client_kwargs(settings, bootstrap), request_timeout_ms=10_000
            )
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        for name in wanted:
            if name in existing:
                continue
            new = NewTopic(
                name=name,
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs={
                    "retention.ms": str(topics.retention_ms(name)),
                    "cleanup.policy": "delete",
                },
            )
            try:
                resp = await admin.create_topics([new])
            except TopicAlreadyExistsError:
                continue
            for topic_name, code, *_ in getattr(resp, "topic_errors", []):
                if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS
                    raise RuntimeError(f"creating topic {topic_name} failed with error {code}")
            created.append(name)
    finally:
        await admin.close()
    if created:
        log.info("created topics", extra={"topics": created})
    return created
