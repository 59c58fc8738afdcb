"""The review store's tables (SQLAlchemy Core). Alembic migrations in review/migrations create
them; tests check that the migrations and this metadata agree.

Content (the item's text and media references, the automated decision with its evidence) lives
only in `task_content`, so the retention sweep deletes it in one place; media bytes are never
stored, only their URIs. Scores live in `task_scores` so calibration survives retention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones: stored naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the review store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("role", String(16), nullable=False),
    # Per-reviewer preference: show media unblurred on open (each reveal is still audited).
    Column("reveal_media", Boolean, nullable=False, default=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    # sha256 of the cookie token: a database read does not yield usable sessions.
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String(64), primary_key=True),
    Column("content_id", String(256), nullable=False, index=True),
    Column("tenant", String(128), nullable=False, default=""),
    Column("surface", String(64), nullable=False, default=""),
    # "open" (in a queue) or "decided".
    Column("state", String(16), nullable=False),
    # Which queue: "reviewer", or "lead" (escalated, or two reviewers disagreed).
    Column("tier", String(16), nullable=False),
    Column("severity", Integer, nullable=False),
    Column("uncertainty", Float, nullable=False),
    # Comma-separated flagged categories (names only, no content).
    Column("categories", String(512), nullable=False, default=""),
    Column("rule", String(256), nullable=False, default=""),
    Column("required_verdicts", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    # The SLA deadline shown to reviewers.
    Column("due_at", UTCDateTime, nullable=False),
    # Queue order: earliest first. A virtual deadline pulled forward by severity and
    # uncertainty (see priority.py), as epoch seconds.
    Column("rank_key", Float, nullable=False),
    Column("lease_owner", Integer, ForeignKey("users.id"), nullable=True),
    Column("lease_until", UTCDateTime, nullable=True),
    Column("escalation_note", String(512), nullable=False, default=""),
    Column("automated_decision_id", String(64), nullable=False, default=""),
    Column("automated_action", String(16), nullable=False, default=""),
    Column("appeal_of", String(64), nullable=True),
    Column("final_action", String(16), nullable=True),
    # Categories the final decision confirmed (calibration labels; names only).
    Column("final_categories", String(512), nullable=True),
    Column("final_decision_id", String(64), nullable=True),
    Column("decided_at", UTCDateTime, nullable=True),
    Column("content_deleted_at", UTCDateTime, nullable=True),
    Index("ix_tasks_queue", "state", "tier", "rank_key"),
)

task_content = Table(
    "task_content",
    metadata,
    Column(
        "task_id",
        String(64),
        ForeignKey("tasks.task_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # crossguard.v1.ContentItem with inline media bytes removed (URIs kept).
    Column("item", LargeBinary, nullable=False),
    # crossguard.v1.ModerationDecision: the decision under review (automated, or the earlier
    # human one for an appeal).
    Column("decision", LargeBinary, nullable=False),
)

task_scores = Table(
    "task_scores",
    metadata,
    Column(
        "task_id",
        String(64),
        ForeignKey("tasks.task_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("category", String(64), primary_key=True),
    Column("score", Float, nullable=False),
    Column("severity", Integer, nullable=False),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), ForeignKey("tasks.task_id"), nullable=False, index=True),
    Column("reviewer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("reviewer", String(64), nullable=False),
    Column("is_lead", Boolean, nullable=False),
    Column("action", String(16), nullable=False),
    Column("categories", String(512), nullable=False, default=""),
    Column("note", Text, nullable=False, default=""),
    Column("created_at", UTCDateTime, nullable=False),
    # One verdict per reviewer per task: a second click cannot count twice for consensus.
    UniqueConstraint("task_id", "reviewer_id", name="uq_verdicts_task_reviewer"),
)

skips = Table(
    "skips",
    metadata,
    Column("task_id", String(64), ForeignKey("tasks.task_id"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(64), ForeignKey("tasks.task_id"), nullable=False),
    # "decision" (crossguard.decisions.v1) or "feedback" (crossguard.feedback.v1).
    Column("kind", String(16), nullable=False),
    Column("key", String(256), nullable=False),
    Column("payload", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    # One final decision and one feedback record per task, whatever retries happen.
    UniqueConstraint("task_id", "kind", name="uq_outbox_task_kind"),
    Index("ix_outbox_unsent", "sent_at", "id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    # login, login_failed, logout, view, reveal, claim, skip, escalate, verdict, appeal,
    # user_created, preference, retention.
    Column("action", String(32), nullable=False),
    Column("task_id", String(64), nullable=True, index=True),
    # Ids and enums only, never content.
    Column("detail", String(512), nullable=False, default=""),
)
