"""Pipeline worker settings (environment variables with the CROSSGUARD_ prefix)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field

from crossguard.core.media.settings import MediaSettings
from crossguard.core.settings import CrossguardSettings

# About 20-25 minutes of speech: a review task stays far under CROSSGUARD_REVIEW_MAX_TASK_BYTES.
DEFAULT_TRANSCRIPT_MAX_CHARS = 20_000


class PipelineSettings(CrossguardSettings):
    # -- services -------------------------------------------------------------------------
    text_endpoint: str = Field(
        default="",
        description="CROSSGUARD_TEXT_ENDPOINT: host:port of the text Classifier service. "
        "Empty: text signals are missing with reason 'not_configured'.",
    )
    vision_endpoint: str = Field(
        default="",
        description="CROSSGUARD_VISION_ENDPOINT: host:port of the image Classifier service.",
    )
    audio_endpoint: str = Field(
        default="",
        description="CROSSGUARD_AUDIO_ENDPOINT: host:port of the audio Classifier service.",
    )
    consistency_endpoint: str = Field(
        default="",
        description="CROSSGUARD_CONSISTENCY_ENDPOINT: host:port of the Consistency service. "
        "Empty: local pass-through fusion (max score per category).",
    )
    consistency_deadline_ms: int = Field(
        default=2000, ge=10, description="CROSSGUARD_CONSISTENCY_DEADLINE_MS: per-call deadline."
    )
    consistency_retries: int = Field(
        default=1, ge=0, le=4, description="CROSSGUARD_CONSISTENCY_RETRIES: on UNAVAILABLE."
    )
    grpc_max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="CROSSGUARD_GRPC_MAX_MESSAGE_BYTES: largest gRPC message sent/received.",
    )
    grpc_connections: int = Field(
        default=4,
        ge=1,
        description="CROSSGUARD_GRPC_CONNECTIONS: connections per classifier endpoint, used in "
        "turn. One connection reaches one server process (a service serving from several "
        "processes on one port) and one pod behind a Kubernetes Service address; several "
        "spread the load.",
    )
    classify_batch_max_items: int = Field(
        default=64,
        ge=1,
        le=1024,
        description="CROSSGUARD_CLASSIFY_BATCH_MAX_ITEMS: most items per ClassifyBatch call: "
        "the worker's concurrent items bound for one classifier endpoint are sent together "
        "(one call, far less gRPC work per item); 1 sends one unary Classify call per item.",
    )
    classify_batch_max_delay_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=1000.0,
        description="CROSSGUARD_CLASSIFY_BATCH_MAX_DELAY_MS: longest an item waits for others "
        "before its ClassifyBatch call goes out (a full batch goes at once).",
    )
    retry_initial_backoff_ms: int = Field(
        default=100,
        ge=1,
        description="CROSSGUARD_RETRY_INITIAL_BACKOFF_MS: first gRPC retry backoff "
        "(doubles per attempt, jittered by grpc).",
    )
    # -- policy ---------------------------------------------------------------------------
    policy_path: Path | None = Field(
        default=None,
        description="CROSSGUARD_POLICY_PATH: policy YAML; empty uses the packaged default. "
        "Reloaded when the file changes; an invalid new file is logged and ignored.",
    )
    policy_check_interval_s: float = Field(
        default=2.0, gt=0, description="CROSSGUARD_POLICY_CHECK_INTERVAL_S: reload check period."
    )
    # -- input limits (violations go to the DLQ) --------------------------------------------
    max_item_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1,
        description="CROSSGUARD_MAX_ITEM_BYTES: largest serialized ContentItem accepted.",
    )
    max_parts: int = Field(default=16, ge=1, description="CROSSGUARD_MAX_PARTS: parts per item.")
    max_text_chars: int = Field(
        default=20_000, ge=1, description="CROSSGUARD_MAX_TEXT_CHARS: characters per text part."
    )
    max_inline_bytes: int = Field(
        default=256 * 1024,
        ge=1,
        description="CROSSGUARD_MAX_INLINE_BYTES: inline media bytes per part; larger media "
        "travel by reference (a uri with sha256 and size, docs/media.md), so records stay "
        "under Kafka's default 1 MB limit.",
    )
    transcript_max_chars: int = Field(
        default=DEFAULT_TRANSCRIPT_MAX_CHARS,
        ge=0,
        description="CROSSGUARD_TRANSCRIPT_MAX_CHARS: characters of audio transcript a decision "
        "(and its review task) carries, over all audio parts: segments overlapping flagged "
        "evidence first, then the rest in time order; whole segments only. 0: none.",
    )
    max_id_chars: int = Field(
        default=256, ge=1, description="CROSSGUARD_MAX_ID_CHARS: length of the content id."
    )
    image_mime_types: str = Field(
        default="image/jpeg,image/png,image/webp,image/gif,image/bmp",
        description="CROSSGUARD_IMAGE_MIME_TYPES: comma-separated image types accepted.",
    )
    audio_mime_types: str = Field(
        default="audio/wav,audio/x-wav,audio/wave,audio/mpeg,audio/ogg,audio/flac,audio/webm,"
        "audio/mp4",
        description="CROSSGUARD_AUDIO_MIME_TYPES: comma-separated audio types accepted.",
    )
    # -- worker ---------------------------------------------------------------------------
    app_id: str = Field(
        default="crossguard-pipeline",
        description="CROSSGUARD_APP_ID: faust app id = Kafka consumer group id. "
        "CROSSGUARD_KAFKA_TOPIC_PREFIX is prepended.",
    )
    agent_concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        description="CROSSGUARD_AGENT_CONCURRENCY: items processed concurrently per worker.",
    )
    decision_store: Literal["table", "memory"] = Field(
        default="table",
        description="CROSSGUARD_DECISION_STORE: where the first decision per (content id, "
        "policy version) is kept, so that a repeat or a replay re-emits it instead of deciding "
        "again. 'table': a faust table backed by its changelog topic (durable: survives a "
        "crash, a restart and a rebalance). 'memory': in the worker only (lost on restart; "
        "bounded by CROSSGUARD_DEDUPE_CACHE_SIZE).",
    )
    decision_retention_s: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="CROSSGUARD_DECISION_RETENTION_S: how long a first decision is kept (0: "
        "forever). Sets retention.ms of the table's changelog (cleanup.policy compact,delete) "
        "and prunes the worker's copy; the table is held in memory, so size it: items/s x "
        "retention x about 1 KiB. Keep it longer than any replay you expect.",
    )
    decision_store_attempts: int = Field(
        default=5,
        ge=1,
        description="CROSSGUARD_DECISION_STORE_ATTEMPTS: tries of a decision-store read or "
        "write (e.g. the changelog send while the broker is unavailable) before the item is "
        "given up for now: it is not dead-lettered and not committed, so it is processed "
        "again (at-least-once).",
    )
    decision_store_backoff_ms: float = Field(
        default=200.0,
        gt=0,
        description="CROSSGUARD_DECISION_STORE_BACKOFF_MS: wait before the second try of a "
        "decision-store operation; doubles per try, at most 5 s.",
    )
    dedupe_cache_size: int = Field(
        default=100_000,
        ge=0,
        description="CROSSGUARD_DEDUPE_CACHE_SIZE: decisions kept by the 'memory' decision "
        "store (0 disables de-duplication there).",
    )
    web_enabled: bool = Field(
        default=False, description="CROSSGUARD_WEB_ENABLED: faust's HTTP server (stats)."
    )
    web_bind: str = Field(default="127.0.0.1", description="CROSSGUARD_WEB_BIND")
    web_port: int = Field(default=6066, ge=1, le=65535, description="CROSSGUARD_WEB_PORT")
    data_dir: Path | None = Field(
        default=None,
        description="CROSSGUARD_DATA_DIR: faust data directory (default: a temporary one).",
    )
    log_level: str = Field(default="INFO", description="CROSSGUARD_LOG_LEVEL")

    # Parsed once (read for every media part; the settings are frozen).
    @cached_property
    def image_types(self) -> frozenset[str]:
        return _mime_set(self.image_mime_types)

    @cached_property
    def audio_types(self) -> frozenset[str]:
        return _mime_set(self.audio_mime_types)

    @cached_property
    def media(self) -> MediaSettings:
        """Media reference limits and the store (CROSSGUARD_MEDIA_*), read from the same
        variables as the classifiers that fetch the media."""
        return MediaSettings()


def _mime_set(value: str) -> frozenset[str]:
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())
