"""Settings of the text safety service: explicit input limits, chunking, evidence budget,
encoder precision and micro-batching. One environment variable per setting (CROSSGUARD_TEXT_*),
named in its description. Bind address and grace period come from the shared GrpcServerSettings
(CROSSGUARD_HOST, CROSSGUARD_PORT, CROSSGUARD_GRACE_SECONDS, ...), model location and onnxruntime
options from ModelSettings (CROSSGUARD_MODEL_REPOSITORY, CROSSGUARD_ONNX_*).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from crossguard.core.errors import ModelError
from crossguard.core.serving.serving_settings import ServerSettings, ServingSettings
from crossguard.core.settings import GrpcServerSettings, ModelSettings
from crossguard.text.encoders import check_english_encoder


class TextServiceSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_TEXT_", frozen=True, extra="ignore")

    # --- input limits -------------------------------------------------------------------------
    max_part_chars: int = Field(
        default=20_000,
        ge=1,
        description="CROSSGUARD_TEXT_MAX_PART_CHARS: most Unicode code points in one text part.",
    )
    max_total_chars: int = Field(
        default=100_000,
        ge=1,
        description="CROSSGUARD_TEXT_MAX_TOTAL_CHARS: most code points over all parts of a "
        "request.",
    )
    max_parts: int = Field(
        default=64, ge=1, description="CROSSGUARD_TEXT_MAX_PARTS: most text parts in one request."
    )
    max_request_bytes: int = Field(
        default=1024 * 1024,
        ge=1,
        description="CROSSGUARD_TEXT_MAX_REQUEST_BYTES: most UTF-8 bytes of text in one request "
        "(the gRPC message limit, CROSSGUARD_MAX_MESSAGE_BYTES, applies before this).",
    )

    # --- chunking of long texts --------------------------------------------------------------
    # Measured on the train split with out-of-fold heads (python -m
    # crossguard.models.tune_chunking; "any" AUPRC / precision / recall at the thresholds):
    # whole-text limits 64 units:384 chars 0.778/0.588/0.880, 128:768 0.781/0.643/0.862,
    # 160:960 0.789/0.649/0.853, 192:1152 0.797/0.656/0.853, 256:1536 0.814/0.674/0.839, never
    # cut 0.835/0.731/0.816. The labels are per document, so cutting costs precision there; the
    # defaults keep recall, and texts of up to 128:768 fit the encoder's 256 word pieces (99.6%
    # on train), so nothing is silently truncated (never cutting would let harmful text hide
    # past the window).
    whole_text_units: int = Field(
        default=128,
        ge=8,
        description="CROSSGUARD_TEXT_WHOLE_TEXT_UNITS: texts of at most this many words (a "
        "CJK/Thai character counts as a word) are scored whole; longer texts are scored per "
        "sentence, so that one bad sentence is not diluted by many harmless ones.",
    )
    window_units: int = Field(
        default=48,
        ge=4,
        description="CROSSGUARD_TEXT_WINDOW_UNITS: in long texts, most words per scored piece; "
        "longer sentences are split into overlapping windows of this size.",
    )
    window_overlap_units: int = Field(
        default=12,
        ge=0,
        description="CROSSGUARD_TEXT_WINDOW_OVERLAP_UNITS: words shared by consecutive windows "
        "of a long sentence, so a phrase cut by a window boundary is still seen whole.",
    )
    min_piece_units: int = Field(
        default=6,
        ge=1,
        description="CROSSGUARD_TEXT_MIN_PIECE_UNITS: in long texts, sentences shorter than this "
        "are merged with a neighbour.",
    )
    chunk_max_chars: int = Field(
        default=768,
        ge=32,
        description="CROSSGUARD_TEXT_CHUNK_MAX_CHARS: hard cap on a chunk's code points (long "
        "unbroken strings such as URLs or base64 would otherwise be silently truncated).",
    )

    # --- evidence ----------------------------------------------------------------------------
    evidence_passes: int = Field(
        default=12,
        ge=0,
        description="CROSSGUARD_TEXT_EVIDENCE_PASSES: most extra model forward passes (occluded "
        "variants) spent on evidence per request; 0 disables evidence.",
    )
    evidence_threshold: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="CROSSGUARD_TEXT_EVIDENCE_THRESHOLD: evidence (extra model passes) is "
        "computed only for items with a category scoring at or above this or its own "
        "threshold, whichever is lower, unless the request asks for it (max_evidence > 0); "
        "default 0.3, the lowest escalate threshold of the default policy, so every item the "
        "policy may escalate carries evidence for review. Set it to the lowest escalate "
        "threshold of your policy.",
    )
    default_evidence: int = Field(
        default=5,
        ge=0,
        description="CROSSGUARD_TEXT_DEFAULT_EVIDENCE: evidence items returned when the request's "
        "max_evidence is 0.",
    )
    max_evidence: int = Field(
        default=32,
        ge=0,
        description="CROSSGUARD_TEXT_MAX_EVIDENCE: cap on evidence items, whatever the request "
        "asks.",
    )
    evidence_min_drop: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="CROSSGUARD_TEXT_EVIDENCE_MIN_DROP: smallest score drop (when the span is "
        "removed) for a span to be reported as evidence.",
    )
    default_threshold: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="CROSSGUARD_TEXT_DEFAULT_THRESHOLD: threshold for evidence when the model "
        "declares none for a category.",
    )

    # --- model -------------------------------------------------------------------------------
    encoder_precision: Literal["auto", "fp32", "int8", "fp16"] = Field(
        default="auto",
        description="CROSSGUARD_TEXT_ENCODER_PRECISION: which MiniLM encoder variant to serve: "
        "int8 (dynamically quantised, about 2x faster on CPU; validation 'any' AUPRC 0.860 vs "
        "0.858 with fp32), fp32, fp16 (fused by onnxruntime's transformer optimizer, for GPUs; "
        "entry minilm-l6-encoder-fp16), or auto = int8 unless the onnxruntime providers include "
        "CUDA, then fp16 when its entry's recorded parity with fp32 holds, else fp32 (the int8 "
        "kernels are CPU-only). The same text heads serve all.",
    )

    # MiniLM by default: it keeps the CPU target (>= 200 texts/s raw on 2 cores); MPNet costs
    # about 5x per text and is better on validation and the development cases
    # (docs/text-model.md, Encoder comparison), so it is the option for GPU nodes.
    english_encoder: Literal["minilm", "mpnet"] = Field(
        default="minilm",
        description="CROSSGUARD_TEXT_ENGLISH_ENCODER: the encoder and heads that score English "
        "text: minilm (minilm-l6-encoder + text-heads, the default; int8 on CPU) or mpnet "
        "(mpnet-base-encoder + text-heads-mpnet: all-mpnet-base-v2, fp32 only, about 5x the "
        "cost per text, better on validation and the development cases; for GPU nodes).",
    )

    # On by default: on the non-English development cases no harmful case in its languages is
    # missed (choice half 17/17, untouched 21/21) and 5/23 / 0/15 benign ones are flagged, where
    # off flags all of them (docs/text-model.md, Languages).
    multilingual: bool = Field(
        default=True,
        description="CROSSGUARD_TEXT_MULTILINGUAL: score texts the English encoder cannot read "
        "but USE multilingual v3 can (ar de es fr it ja ko nl pl pt ru th tr zh; entries "
        "use-m3-encoder and text-heads-multilingual, heads trained on English data only) with "
        "that encoder; off: they are reported unsupported_language and the policy's fallback "
        "applies. Texts in other languages are unsupported either way. Non-English development "
        "cases: docs/text-model.md, Languages.",
    )

    # --- micro-batching ----------------------------------------------------------------------
    # Defaults measured on 2 quiet CPU cores, 16 closed-loop gRPC clients (one connection each),
    # 4 interleaved rounds, int8 encoder, TOKENIZERS_PARALLELISM off: 2 processes × 1 worker
    # 392-409 items/s at batch_max 8, 382-400 at 4, 372-402 at 32; 2 processes × 2 workers
    # 366-381; 1 process × 2 workers 365-409 (at 1.6 of the 2 cores: 4.2 ms of CPU per text vs
    # 4.4 for 2 processes, which scale further on more cores). With the fp32 encoder (before):
    # 1 process, workers 2 × 1 ORT thread 138-140, 1 × 2 124, 1 × 1 89. Max delay 0 ms 99 vs
    # 2 ms 85 (a closed loop queues work while the model runs, so waiting adds nothing).
    # processes, batch_max, batch_max_delay_ms, batch_workers, queue_max: ServingSettings.
    model_sub_batch: int = Field(
        default=16,
        ge=0,
        description="CROSSGUARD_TEXT_MODEL_SUB_BATCH: most texts per onnxruntime call inside one "
        "model batch; the model sorts a batch by token length and cuts it where padding would "
        "exceed CROSSGUARD_TEXT_MODEL_MAX_PADDING; 0 keeps the model's default.",
    )
    model_max_padding: float = Field(
        default=0.25,
        ge=0.0,
        description="CROSSGUARD_TEXT_MODEL_MAX_PADDING: most padding tokens per real token in one "
        "onnxruntime call (on 2 CPU cores, 0.1-0.25 was best; 0.5 ~15% slower; fixed "
        "sub-batches of 8 ~25% slower at batch 16, ~35% at batch 4).",
    )
    gpu_sub_batch: int = Field(
        default=128,
        ge=1,
        description="CROSSGUARD_TEXT_GPU_SUB_BATCH: on CUDA, most texts per onnxruntime call "
        "(instead of CROSSGUARD_TEXT_MODEL_SUB_BATCH): a GPU wants large calls; texts are still "
        "sorted by token length and cut where padding would exceed "
        "CROSSGUARD_TEXT_GPU_MAX_PADDING (length buckets).",
    )
    gpu_max_padding: float = Field(
        default=0.5,
        ge=0.0,
        description="CROSSGUARD_TEXT_GPU_MAX_PADDING: on CUDA, most padding tokens per real "
        "token in one onnxruntime call (padding costs a GPU less than a smaller call).",
    )
    onnx_spinning: bool = Field(
        default=False,
        description="CROSSGUARD_TEXT_ONNX_SPINNING: let onnxruntime's intra-op threads spin-wait "
        "between calls (its own default). Off by default: spinning threads take the CPU the "
        "event loop, gRPC and tokenisation need between model calls.",
    )

    @model_validator(mode="after")
    def _check(self) -> TextServiceSettings:
        if self.window_overlap_units >= self.window_units:
            raise ValueError(
                f"window_overlap_units ({self.window_overlap_units}) must be smaller than "
                f"window_units ({self.window_units})"
            )
        if self.max_part_chars > self.max_total_chars:
            raise ValueError(
                f"max_part_chars ({self.max_part_chars}) must not exceed "
                f"max_total_chars ({self.max_total_chars})"
            )
        try:  # the model's own rule, checked when the settings are read
            check_english_encoder(self.english_encoder, self.encoder_precision)
        except ModelError as exc:
            raise ValueError(str(exc)) from exc
        return self


class TextServerSettings(ServerSettings[TextServiceSettings]):
    """Everything `python -m crossguard.text` reads from the environment, in one place."""

    def __init__(
        self,
        text: TextServiceSettings | None = None,
        grpc: GrpcServerSettings | None = None,
        model: ModelSettings | None = None,
    ) -> None:
        super().__init__(text or TextServiceSettings(), grpc, model)

    @property
    def text(self) -> TextServiceSettings:
        return self.service
