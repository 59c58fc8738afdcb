"""Settings every classifier service shares (server processes, micro-batching, queue bound),
as a base for a modality's own settings class, and the bundle a server reads from the
environment (modality settings, gRPC server settings, model settings).

A modality subclasses ServingSettings with its own env prefix (e.g. CROSSGUARD_TEXT_); the
shared fields then read CROSSGUARD_TEXT_BATCH_MAX etc., and their descriptions name that
variable (docs/configuration.md is generated from them). A subclass may redeclare a field to
change its default, as `batch_max: int = Field(default=8, ge=1)`: without a description of its
own the field keeps the shared one.
"""

from __future__ import annotations

import copy
from typing import Any, Generic, Self, TypeVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crossguard.core.settings import CrossguardSettings, GrpcServerSettings, ModelSettings

_ENV = "{env}"


class ServingSettings(CrossguardSettings):
    """Base of a classifier service's settings; not read on its own (no env prefix)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    processes: int = Field(
        default=0,
        ge=0,
        description=f"{_ENV}PROCESSES: server processes sharing the gRPC port (SO_REUSEPORT), "
        "each with its own model copy and micro-batcher; 0 = auto: 1 when the onnxruntime "
        "providers include CUDA, else one per available CPU (cgroup CPU limit respected) "
        "divided by CROSSGUARD_ONNX_INTRA_OP_THREADS when that is set.",
    )
    batch_max: int = Field(
        default=32, ge=1, description=f"{_ENV}BATCH_MAX: most items per model call."
    )
    batch_max_delay_ms: float = Field(
        default=0.0,
        ge=0.0,
        description=f"{_ENV}BATCH_MAX_DELAY_MS: longest wait for more items after the first one "
        "of a batch (items that queued while the model was busy are always taken).",
    )
    batch_workers: int = Field(
        default=1,
        ge=1,
        description=f"{_ENV}BATCH_WORKERS: model calls in flight at once per server process "
        "(each gets the process's share of CPUs / workers onnxruntime threads unless "
        "CROSSGUARD_ONNX_INTRA_OP_THREADS is set).",
    )
    gpu_processes: int = Field(
        default=0,
        ge=0,
        description=f"{_ENV}GPU_PROCESSES: server processes when the model runs on CUDA and "
        f"{_ENV}PROCESSES is 0: front ends (gRPC, parsing, tokenisation) that keep one GPU "
        "busy; 0 = auto: a quarter of the available CPUs, 1 to 8 (one GPU context each).",
    )
    gpu_batch_max: int = Field(
        default=256,
        ge=1,
        description=f"{_ENV}GPU_BATCH_MAX: most items per model call on CUDA (instead of "
        f"{_ENV}BATCH_MAX).",
    )
    gpu_batch_workers: int = Field(
        default=2,
        ge=1,
        description=f"{_ENV}GPU_BATCH_WORKERS: model calls in flight per process on CUDA "
        f"(instead of {_ENV}BATCH_WORKERS): one prepares (tokenises) a batch while another "
        "runs on the GPU.",
    )
    batch_call_max_items: int = Field(
        default=1024,
        ge=1,
        description=f"{_ENV}BATCH_CALL_MAX_ITEMS: most requests in one ClassifyBatch call; a "
        "larger batch fails whole with INVALID_ARGUMENT (each item's own limits apply too).",
    )
    queue_max: int = Field(
        default=4096,
        ge=1,
        description=f"{_ENV}QUEUE_MAX: items waiting for the model before requests are refused "
        "with RESOURCE_EXHAUSTED.",
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Name each shared field's variable with the subclass's prefix in its description."""
        super().__pydantic_init_subclass__(**kwargs)
        prefix = str(cls.model_config.get("env_prefix", "")).upper()
        shared = ServingSettings.__pydantic_fields__
        for name, info in list(cls.__pydantic_fields__.items()):
            description = info.description
            if description is None and name in shared:  # redeclared for another default
                description = shared[name].description
            if description and _ENV in description:
                named = copy.copy(info)
                named.description = description.replace(_ENV, prefix)
                cls.__pydantic_fields__[name] = named


S = TypeVar("S", bound=ServingSettings)


class ServerSettings(Generic[S]):
    """Everything a classifier server reads from the environment, in one place: the
    modality's settings (`service`), the gRPC server's and the model repository's."""

    def __init__(
        self,
        service: S,
        grpc: GrpcServerSettings | None = None,
        model: ModelSettings | None = None,
    ) -> None:
        self.service = service
        self.grpc = grpc or GrpcServerSettings()
        self.model = model or ModelSettings()

    def with_port(self, port: int) -> Self:
        """The same settings bound to `port` (a server process of several)."""
        bound = copy.copy(self)
        bound.grpc = self.grpc.model_copy(update={"port": port})
        return bound
