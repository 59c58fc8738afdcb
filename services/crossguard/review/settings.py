"""Review service settings (CROSSGUARD_REVIEW_*)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from crossguard.core.settings import CrossguardSettings

DEFAULT_SLA_MINUTES: dict[str, int] = {
    # Imminent-harm categories are answered first; spam can wait a day.
    "sexual/minors": 60,
    "self-harm/intent": 60,
    "self-harm/instructions": 120,
    "hate/threatening": 120,
    "harassment/threatening": 120,
    "violence/graphic": 240,
    "extremism": 240,
    "spam": 2880,
    "scam": 1440,
}


class ReviewSettings(CrossguardSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_REVIEW_", frozen=True, extra="ignore")

    database_url: SecretStr = Field(
        default=SecretStr("sqlite:///.crossguard/review.db"),
        description="CROSSGUARD_REVIEW_DATABASE_URL: SQLAlchemy URL of the review store, e.g. "
        "postgresql+psycopg://user:pass@host/db (production) or sqlite:///path (the embedded "
        "default); secret because it may hold a password. Migrations run at start-up.",
    )
    host: str = Field(default="127.0.0.1", description="CROSSGUARD_REVIEW_HOST: bind address.")
    port: int = Field(
        default=8080, ge=0, le=65535, description="CROSSGUARD_REVIEW_PORT: 0 picks a free port."
    )
    public_url: str = Field(
        default="",
        description="CROSSGUARD_REVIEW_PUBLIC_URL: the address reviewers use (e.g. behind an "
        "ingress). A state-changing request whose Origin header names another host than this "
        "one or the request's Host is refused (with the CSRF token check).",
    )
    cookie_secure: bool = Field(
        default=True,
        description="CROSSGUARD_REVIEW_COOKIE_SECURE: mark the session cookie Secure (HTTPS "
        "only; browsers also accept it on http://localhost). Turn off only for plain-HTTP "
        "tests on other hosts.",
    )
    session_minutes: int = Field(
        default=480, ge=5, description="CROSSGUARD_REVIEW_SESSION_MINUTES: session lifetime."
    )
    lease_seconds: int = Field(
        default=600,
        ge=5,
        description="CROSSGUARD_REVIEW_LEASE_SECONDS: how long a claimed task stays with its "
        "reviewer; an expired lease returns the task to the queue.",
    )
    default_sla_minutes: int = Field(
        default=1440,
        ge=1,
        description="CROSSGUARD_REVIEW_DEFAULT_SLA_MINUTES: review SLA of categories not in "
        "CROSSGUARD_REVIEW_SLA_MINUTES.",
    )
    sla_minutes: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_SLA_MINUTES),
        description="CROSSGUARD_REVIEW_SLA_MINUTES: JSON object, category → SLA minutes. A "
        "task's deadline is the tightest SLA of its flagged categories (or the pipeline's "
        "deadline when sooner).",
    )
    consensus_categories: list[str] = Field(
        default_factory=lambda: [
            "sexual/minors",
            "self-harm/instructions",
            "hate/threatening",
            "extremism",
        ],
        description="CROSSGUARD_REVIEW_CONSENSUS_CATEGORIES: JSON list of categories that need "
        "two agreeing reviewers when flagged at CROSSGUARD_REVIEW_CONSENSUS_MIN_SEVERITY or "
        "above (a lead breaks ties); the pipeline's required_verdicts also counts.",
    )
    consensus_min_severity: int = Field(
        default=2,
        ge=0,
        le=3,
        description="CROSSGUARD_REVIEW_CONSENSUS_MIN_SEVERITY: severity (0-3) from which a "
        "consensus category needs two reviewers.",
    )
    retention_days: int = Field(
        default=90,
        ge=0,
        description="CROSSGUARD_REVIEW_RETENTION_DAYS: content and media references of tasks "
        "closed (or received) longer ago than this are deleted; verdicts, decisions and the "
        "audit log stay. 0 keeps content forever.",
    )
    retention_interval_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="CROSSGUARD_REVIEW_RETENTION_INTERVAL_SECONDS: how often the retention "
        "sweep runs.",
    )
    publish_interval_seconds: float = Field(
        default=0.2,
        gt=0,
        description="CROSSGUARD_REVIEW_PUBLISH_INTERVAL_SECONDS: how often unsent final "
        "decisions and feedback are looked for (the outbox).",
    )
    max_note_chars: int = Field(
        default=2000, ge=0, description="CROSSGUARD_REVIEW_MAX_NOTE_CHARS: longest verdict note."
    )
    max_task_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="CROSSGUARD_REVIEW_MAX_TASK_BYTES: largest ReviewTask record accepted (after "
        "inline media is dropped); larger ones are skipped with an error log.",
    )
    preview_max_side: int = Field(
        default=64,
        ge=8,
        le=512,
        description="CROSSGUARD_REVIEW_PREVIEW_MAX_SIDE: longest side in pixels of the blurred, "
        "greyscale preview served for an image until the reviewer reveals the task.",
    )
    preview_max_pixels: int = Field(
        default=40_000_000,
        ge=1,
        description="CROSSGUARD_REVIEW_PREVIEW_MAX_PIXELS: largest image (width x height) the "
        "service decodes to make a preview; larger ones are not shown until revealed.",
    )
    policy_path: Path | None = Field(
        default=None,
        description="CROSSGUARD_REVIEW_POLICY_PATH: the policy file (the pipeline's) whose "
        "statement_of_reasons section words the statements of reasons of final decisions "
        "(hot-reloaded); unset: the bundled default policy.",
    )
    consumer_group: str = Field(
        default="crossguard-review",
        description="CROSSGUARD_REVIEW_CONSUMER_GROUP: Kafka consumer group for the review topic.",
    )
    bootstrap_password: SecretStr = Field(
        default=SecretStr(""),
        description="CROSSGUARD_REVIEW_BOOTSTRAP_PASSWORD: when set and no user exists yet, "
        "create the accounts demo-reviewer, demo-lead and demo-admin with this password "
        "(demo and first start); change or remove them afterwards.",
    )
    log_level: str = Field(
        default="INFO", description="CROSSGUARD_REVIEW_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
    )

    def sla_for(self, category: str) -> int:
        return self.sla_minutes.get(category, self.default_sla_minutes)
