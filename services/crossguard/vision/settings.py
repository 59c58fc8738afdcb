"""Settings of the vision safety service: explicit input limits (bytes, pixels, frames, decode
time), the decoding pool, OCR and the text service that scores its text, and the known-bad hash
banks. One environment variable per setting (CROSSGUARD_VISION_*), named in its description.
Server processes and micro-batching are the template's shared settings (ServingSettings, read as
CROSSGUARD_VISION_PROCESSES, CROSSGUARD_VISION_BATCH_MAX, ...). Bind address and grace period
come from the shared GrpcServerSettings (CROSSGUARD_HOST, CROSSGUARD_PORT, ...), model location
and onnxruntime options from ModelSettings (CROSSGUARD_MODEL_REPOSITORY, CROSSGUARD_ONNX_*).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from crossguard.core.serving.serving_settings import ServerSettings, ServingSettings
from crossguard.core.settings import CrossguardSettings, GrpcServerSettings, ModelSettings
from crossguard.vision.ocr import MIN_CONFIDENCE


class DecodeLimits(CrossguardSettings):
    """Limits on one image, checked before and while it is decoded (crossguard.vision.decode)."""

    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_VISION_", frozen=True, extra="ignore")

    max_image_bytes: int = Field(
        default=20 * 1024 * 1024,
        ge=64,
        description="CROSSGUARD_VISION_MAX_IMAGE_BYTES: most bytes of one encoded image.",
    )
    max_pixels: int = Field(
        default=40_000_000,
        ge=64,
        description="CROSSGUARD_VISION_MAX_PIXELS: most pixels (width × height) of one image or "
        "frame, read from the header before any pixel is decoded (decompression bombs).",
    )
    max_side: int = Field(
        default=16_384,
        ge=8,
        description="CROSSGUARD_VISION_MAX_SIDE: most pixels along either side.",
    )
    max_frames: int = Field(
        default=1_000,
        ge=1,
        description="CROSSGUARD_VISION_MAX_FRAMES: most frames an animated GIF/WebP may declare.",
    )
    max_total_pixels: int = Field(
        default=400_000_000,
        ge=64,
        description="CROSSGUARD_VISION_MAX_TOTAL_PIXELS: most pixels decoded over all frames of "
        "one animation (seeking to a sampled frame decodes the frames before it).",
    )
    sample_frames: int = Field(
        default=8,
        ge=1,
        le=64,
        description="CROSSGUARD_VISION_SAMPLE_FRAMES: frames of an animation that are scored, "
        "spread evenly from the first to the last; the worst one is reported with its index.",
    )
    working_side: int = Field(
        default=1_280,
        ge=224,
        description="CROSSGUARD_VISION_WORKING_SIDE: decoded frames are downscaled so that their "
        "longer side is at most this (enough for the models and OCR; bounds memory).",
    )


class VisionServiceSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_VISION_", frozen=True, extra="ignore")

    # One process by default: each holds its own decode workers, open_nsfw and PP-OCR, and
    # OCR already keeps the CPUs busy through onnxruntime's threads.
    processes: int = Field(default=1, ge=0)
    batch_max: int = Field(default=16, ge=1)

    max_parts: int = Field(
        default=16,
        ge=1,
        description="CROSSGUARD_VISION_MAX_PARTS: most image parts in one request.",
    )
    default_evidence: int = Field(
        default=32,
        ge=1,
        description="CROSSGUARD_VISION_DEFAULT_EVIDENCE: most evidence pieces in a response when "
        "the request's max_evidence is 0 (hash matches, flagged OCR lines, model scores, then "
        "the other OCR lines).",
    )
    decode_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        description="CROSSGUARD_VISION_DECODE_TIMEOUT_SECONDS: most wall time to decode one "
        "image; a decoder still running then is killed and its worker replaced.",
    )
    decode_workers: int = Field(
        default=2,
        ge=1,
        description="CROSSGUARD_VISION_DECODE_WORKERS: decoding worker processes (a bounded pool: "
        "a bad image ties up one worker, never the service).",
    )
    ocr: bool = Field(
        default=True,
        description="CROSSGUARD_VISION_OCR: read text in images (PP-OCR) and score it with the "
        "text models.",
    )
    ocr_min_confidence: float = Field(
        default=MIN_CONFIDENCE,
        ge=0,
        le=1,
        description="CROSSGUARD_VISION_OCR_MIN_CONFIDENCE: OCR lines recognised with less "
        "confidence are dropped (real text reads at 0.9 or more; noise in photos at 0.5-0.65).",
    )
    ocr_min_chars: int = Field(
        default=3,
        ge=0,
        description="CROSSGUARD_VISION_OCR_MIN_CHARS: a frame whose OCR text has fewer letters "
        "and digits is shown to reviewers but not scored (a stray glyph carries no meaning).",
    )
    ocr_max_frames: int = Field(
        default=2,
        ge=1,
        le=64,
        description="CROSSGUARD_VISION_OCR_MAX_FRAMES: frames of an animation that are read by "
        "OCR (spread over the sampled frames; OCR costs far more than the image models).",
    )
    ocr_max_chars: int = Field(
        default=4_000,
        ge=16,
        description="CROSSGUARD_VISION_OCR_MAX_CHARS: most characters of OCR text per image "
        "scored by the text models (screenshots of long documents are cut here).",
    )
    ocr_chunk_words: int = Field(
        default=64,
        ge=4,
        description="CROSSGUARD_VISION_OCR_CHUNK_WORDS: OCR lines are grouped into pieces of at "
        "most this many words, each scored by the text models (the maximum counts).",
    )
    text_endpoint: str = Field(
        default="127.0.0.1:50051",
        description="CROSSGUARD_VISION_TEXT_ENDPOINT: host:port of the text service that scores "
        "OCR text (its ClassifierService).",
    )
    text_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="CROSSGUARD_VISION_TEXT_TIMEOUT_SECONDS: deadline of one call to the text "
        "service; past it the image request fails with UNAVAILABLE.",
    )
    text_batch_max_items: int = Field(
        default=16,
        ge=1,
        le=1024,
        description="CROSSGUARD_VISION_TEXT_BATCH_MAX_ITEMS: most concurrent requests' OCR "
        "texts sent to the text service in one ClassifyBatch call; 1 sends one unary "
        "Classify per image.",
    )
    text_batch_max_delay_ms: float = Field(
        default=2.0,
        ge=0.0,
        le=1000.0,
        description="CROSSGUARD_VISION_TEXT_BATCH_MAX_DELAY_MS: longest an image's OCR text "
        "waits for others before its ClassifyBatch call goes out (a full batch goes at once).",
    )
    nsfwjs: bool = Field(
        default=True,
        description="CROSSGUARD_VISION_NSFWJS: score frames with the nsfwjs MobileNetV2 as a "
        "second opinion on sexual content when its entry is in the model repository.",
    )
    clip_model: str = Field(
        default="",
        description="CROSSGUARD_VISION_CLIP_MODEL: name of a CLIP entry in the model repository "
        "(made by `crossguard models export` from a local CLIP checkpoint) for zero-shot "
        "category scores and each image's embedding in the response (for the consistency "
        "service's image_caption_agreement); empty: no CLIP signal.",
    )
    clip_prompts: Path | None = Field(
        default=None,
        description="CROSSGUARD_VISION_CLIP_PROMPTS: YAML file of zero-shot prompts (benign, and "
        "per category); empty: the bundled crossguard/vision/clip_prompts.yaml.",
    )
    hash_banks: bool = Field(
        default=True,
        description="CROSSGUARD_VISION_HASH_BANKS: match images against the known-bad hash "
        "banks in CROSSGUARD_VISION_HASH_DB.",
    )
    hash_db: SecretStr = Field(
        default=SecretStr("sqlite:///.crossguard/hashes.db"),
        description="CROSSGUARD_VISION_HASH_DB: SQLAlchemy URL of the hash bank store "
        "(sqlite:///path embedded; postgresql+psycopg://user:pass@host/db in production). "
        "Secret: it may hold a password.",
    )
    pdq_threshold: int = Field(
        default=31,
        ge=0,
        le=64,
        description="CROSSGUARD_VISION_PDQ_THRESHOLD: largest Hamming distance (of 256 bits) "
        "between PDQ hashes that counts as a match.",
    )
    pdq_min_quality: int = Field(
        default=50,
        ge=0,
        le=100,
        description="CROSSGUARD_VISION_PDQ_MIN_QUALITY: images whose PDQ quality is lower (flat, "
        "featureless) are not matched: their hashes collide with unrelated images.",
    )
    phash_threshold: int = Field(
        default=6,
        ge=0,
        le=32,
        description="CROSSGUARD_VISION_PHASH_THRESHOLD: largest Hamming distance (of 64 bits) "
        "between pHashes that counts as a match, for banks that hold pHashes.",
    )
    hash_reload_seconds: float = Field(
        default=60.0,
        ge=0,
        description="CROSSGUARD_VISION_HASH_RELOAD_SECONDS: how often the service reloads the "
        "banks' index when the store changed (0: only at start).",
    )


class VisionServerSettings(ServerSettings[VisionServiceSettings]):
    """Everything the vision server reads from the environment."""

    def __init__(
        self,
        vision: VisionServiceSettings | None = None,
        grpc: GrpcServerSettings | None = None,
        model: ModelSettings | None = None,
        limits: DecodeLimits | None = None,
    ) -> None:
        super().__init__(vision or VisionServiceSettings(), grpc, model)
        self.limits = limits or DecodeLimits()

    @property
    def vision(self) -> VisionServiceSettings:
        return self.service
