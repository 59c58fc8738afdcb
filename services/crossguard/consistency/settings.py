"""Settings of the consistency service (CROSSGUARD_CONSISTENCY_*). Bind address and grace
period come from GrpcServerSettings, the model repository and onnxruntime options from
ModelSettings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crossguard.core.settings import CrossguardSettings


class ConsistencySettings(CrossguardSettings):
    model_config = SettingsConfigDict(
        env_prefix="CROSSGUARD_CONSISTENCY_", frozen=True, extra="ignore"
    )

    fusion_config: Path | None = Field(
        default=None,
        description="CROSSGUARD_CONSISTENCY_FUSION_CONFIG: YAML/JSON file with the fusion rule's "
        "reliabilities, cut-offs and combination weights (docs/fusion.md); empty: the packaged "
        "defaults fitted by `crossguard eval fusion`.",
    )
    text_endpoint: str = Field(
        default="",
        description="CROSSGUARD_CONSISTENCY_TEXT_ENDPOINT: host:port of the text "
        "ClassifierService that scores an item's texts read together (caption + OCR text + "
        "transcript) for the harmful-combination check; empty: that check is off.",
    )
    text_deadline_ms: int = Field(
        default=1500,
        ge=10,
        description="CROSSGUARD_CONSISTENCY_TEXT_DEADLINE_MS: deadline of that call; on a "
        "timeout or error the item is fused without the combination (and says so).",
    )
    text_retries: int = Field(
        default=2,
        ge=0,
        le=4,
        description="CROSSGUARD_CONSISTENCY_TEXT_RETRIES: grpc retries of that call on "
        "UNAVAILABLE or RESOURCE_EXHAUSTED, within its deadline (backoff from "
        "CROSSGUARD_CONSISTENCY_TEXT_RETRY_INITIAL_BACKOFF_MS, doubling).",
    )
    text_retry_initial_backoff_ms: int = Field(
        default=100,
        ge=1,
        description="CROSSGUARD_CONSISTENCY_TEXT_RETRY_INITIAL_BACKOFF_MS: first retry backoff "
        "of that call.",
    )
    text_batch_max_items: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="CROSSGUARD_CONSISTENCY_TEXT_BATCH_MAX_ITEMS: most concurrent checks' "
        "combined texts sent in one ClassifyBatch call; 1 sends one unary Classify per check.",
    )
    text_batch_max_delay_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=1000.0,
        description="CROSSGUARD_CONSISTENCY_TEXT_BATCH_MAX_DELAY_MS: longest a combined text "
        "waits for others before its ClassifyBatch call goes out (a full batch goes at once).",
    )
    semantic_agreement: bool = Field(
        default=True,
        description="CROSSGUARD_CONSISTENCY_SEMANTIC_AGREEMENT: load the sentence encoder "
        "(minilm-l6-encoder from CROSSGUARD_MODEL_REPOSITORY) and measure how the item's texts "
        "agree; false: no text_agreement signals.",
    )
    framing_model: str = Field(
        default="framing-head",
        description="CROSSGUARD_CONSISTENCY_FRAMING_MODEL: model repository entry of the framing "
        "head (built by `crossguard models build`) that reads the agreement embeddings for the "
        "harmful_framing signal: one text frames the people another names (docs/fusion.md); "
        "empty: off. Needs CROSSGUARD_CONSISTENCY_SEMANTIC_AGREEMENT.",
    )
    embed_max_batch: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="CROSSGUARD_CONSISTENCY_EMBED_MAX_BATCH: most texts per sentence-encoder "
        "call; the texts of concurrent checks are batched together.",
    )
    clip_model: str = Field(
        default="",
        description="CROSSGUARD_CONSISTENCY_CLIP_MODEL: model repository entry of a CLIP model "
        "(made by `crossguard models export`) whose text tower embeds captions to compare with "
        "the image embeddings the vision service returns (set CROSSGUARD_VISION_CLIP_MODEL to "
        "the same entry) for the image_caption_agreement signal; empty: off.",
    )
    max_text_chars: int = Field(
        default=6000,
        ge=1,
        description="CROSSGUARD_CONSISTENCY_MAX_TEXT_CHARS: most characters of each of an item's "
        "caption, OCR text and transcript (a longer one is refused: INVALID_ARGUMENT).",
    )
    max_responses: int = Field(
        default=16,
        ge=1,
        description="CROSSGUARD_CONSISTENCY_MAX_RESPONSES: most classifier responses in one "
        "Check request.",
    )
