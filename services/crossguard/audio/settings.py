"""Settings of the audio safety service: input limits, voice activity, speech to text and its
guards, the optional event tagger, and the template's shared serving settings
(CROSSGUARD_AUDIO_PROCESSES, _BATCH_MAX, _BATCH_WORKERS, ...). One environment variable per
setting, named in its description. Model location and onnxruntime options come from
ModelSettings (CROSSGUARD_MODEL_REPOSITORY, CROSSGUARD_ONNX_*), bind address from
GrpcServerSettings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from crossguard.core.serving.serving_settings import ServerSettings, ServingSettings
from crossguard.core.settings import GrpcServerSettings, ModelSettings


class AudioServiceSettings(ServingSettings):
    """The audio classifier: limits, VAD, Whisper and its guards, event tagger, serving."""

    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_AUDIO_", frozen=True, extra="ignore")

    # --- serving (shared settings with audio defaults) ----------------------------------------
    # One process: Whisper uses every CPU of the process for one part already, and each process
    # would hold its own Whisper and text model copies.
    processes: int = Field(default=1, ge=0)
    # One part per model call: parts are long and independent (a bad part fails alone);
    # batch_workers parts are analysed at once, each by its own CTranslate2 worker.
    batch_max: int = Field(default=1, ge=1)
    queue_max: int = Field(default=64, ge=1)

    # --- input limits -------------------------------------------------------------------------
    max_bytes: int = Field(
        default=15 * 1024 * 1024,
        ge=1,
        description="CROSSGUARD_AUDIO_MAX_BYTES: most bytes of one encoded audio part (inline "
        "parts also travel within CROSSGUARD_MAX_MESSAGE_BYTES, 16 MiB by default).",
    )
    max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="CROSSGUARD_AUDIO_MAX_SECONDS: longest audio part, in seconds (checked on the "
        "header and again while decoding, since headers can lie).",
    )
    min_sample_rate: int = Field(
        default=8000,
        ge=1,
        description="CROSSGUARD_AUDIO_MIN_SAMPLE_RATE: lowest accepted sample rate (Hz).",
    )
    max_sample_rate: int = Field(
        default=192_000,
        ge=1,
        description="CROSSGUARD_AUDIO_MAX_SAMPLE_RATE: highest accepted sample rate (Hz).",
    )
    max_channels: int = Field(
        default=8,
        ge=1,
        description="CROSSGUARD_AUDIO_MAX_CHANNELS: most channels; they are averaged to mono.",
    )
    max_parts: int = Field(
        default=8, ge=1, description="CROSSGUARD_AUDIO_MAX_PARTS: most audio parts per request."
    )
    window_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="CROSSGUARD_AUDIO_WINDOW_SECONDS: audio decoded and resampled at a time; long "
        "audio is processed window by window, so memory stays bounded by this, the longest "
        "speech segment and one transcription chunk, whatever the duration.",
    )

    # --- voice activity (Silero VAD) ---------------------------------------------------------
    vad_threshold: float = Field(
        default=0.5,
        gt=0,
        lt=1,
        description="CROSSGUARD_AUDIO_VAD_THRESHOLD: speech probability that opens a speech "
        "segment (it closes below this minus 0.15, Silero's hysteresis).",
    )
    vad_min_speech_ms: int = Field(
        default=250,
        ge=0,
        description="CROSSGUARD_AUDIO_VAD_MIN_SPEECH_MS: shorter speech segments are dropped.",
    )
    vad_min_silence_ms: int = Field(
        default=300,
        ge=0,
        description="CROSSGUARD_AUDIO_VAD_MIN_SILENCE_MS: silence that ends a speech segment.",
    )
    vad_speech_pad_ms: int = Field(
        default=200,
        ge=0,
        description="CROSSGUARD_AUDIO_VAD_SPEECH_PAD_MS: audio kept on each side of a speech "
        "segment (word onsets and endings fall below the VAD threshold).",
    )
    max_segment_seconds: float = Field(
        default=28.0,
        gt=1,
        le=30,
        description="CROSSGUARD_AUDIO_MAX_SEGMENT_SECONDS: a speech segment longer than this is "
        "cut (Whisper reads at most 30 s at once).",
    )
    chunk_seconds: float = Field(
        default=30.0,
        gt=1,
        le=30,
        description="CROSSGUARD_AUDIO_CHUNK_SECONDS: speech segments are packed, silence removed, "
        "into chunks of at most this many seconds, one Whisper call each (Whisper's encoder "
        "always reads a 30 s window, so packing saves calls).",
    )

    # --- speech to text (Whisper via faster-whisper / CTranslate2) ----------------------------
    whisper_model: str = Field(
        default="whisper-base",
        description="CROSSGUARD_AUDIO_WHISPER_MODEL: model repository entry of the Whisper "
        "weights: whisper-base (multilingual, default) or whisper-tiny-en (English only, about "
        "3x faster, higher error rate).",
    )
    whisper_device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto",
        description="CROSSGUARD_AUDIO_WHISPER_DEVICE: CTranslate2 device; auto = cuda when "
        "CTranslate2 sees a CUDA device, else cpu.",
    )
    whisper_compute_type: str = Field(
        default="auto",
        description="CROSSGUARD_AUDIO_WHISPER_COMPUTE_TYPE: CTranslate2 compute type; auto = "
        "int8 on cpu, float16 on cuda.",
    )
    whisper_threads: int = Field(
        default=0,
        ge=0,
        description="CROSSGUARD_AUDIO_WHISPER_THREADS: CPU threads per Whisper call; 0 = the "
        "process's CPUs divided by CROSSGUARD_AUDIO_BATCH_WORKERS.",
    )
    beam_size: int = Field(
        default=1,
        ge=1,
        le=10,
        description="CROSSGUARD_AUDIO_BEAM_SIZE: Whisper beam size (1 = greedy; 5 is upstream's "
        "default, slower for little gain on clear speech).",
    )
    language: str = Field(
        default="",
        description="CROSSGUARD_AUDIO_LANGUAGE: force a language code (e.g. 'en'); empty = "
        "detect it per chunk and report it.",
    )

    # --- guards against Whisper's known failures ----------------------------------------------
    max_tokens_per_second: float = Field(
        default=6.0,
        gt=0,
        description="CROSSGUARD_AUDIO_MAX_TOKENS_PER_SECOND: most text tokens Whisper may emit "
        "per second of speech (fast speech is ~4-5); decoding stops at the cap, and a "
        "transcript that reaches it is marked 'token_cap'.",
    )
    max_repeats: int = Field(
        default=3,
        ge=1,
        description="CROSSGUARD_AUDIO_MAX_REPEATS: a phrase of 1-8 words repeated back to back "
        "more than this many times is a decoding loop: the transcript keeps this many and is "
        "marked 'repetition'.",
    )
    no_speech_threshold: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="CROSSGUARD_AUDIO_NO_SPEECH_THRESHOLD: Whisper's no-speech probability above "
        "which a low-confidence segment is dropped.",
    )

    # --- scoring and evidence -----------------------------------------------------------------
    english_encoder: Literal["minilm", "mpnet"] = Field(
        default="minilm",
        description="CROSSGUARD_AUDIO_ENGLISH_ENCODER: the English encoder and heads that score "
        "transcripts in process, as CROSSGUARD_TEXT_ENGLISH_ENCODER for the text service: "
        "minilm (the default) or mpnet (fp32, about 5x the cost per text; for GPU nodes). Set "
        "both to the same value so that speech and text are judged alike.",
    )
    whole_transcript_words: int = Field(
        default=128,
        ge=1,
        description="CROSSGUARD_AUDIO_WHOLE_TRANSCRIPT_WORDS: transcripts of at most this many "
        "words are scored whole (as the text service scores texts of up to "
        "CROSSGUARD_TEXT_WHOLE_TEXT_UNITS words); longer ones per segment and pair of "
        "neighbouring segments, each category's maximum over them.",
    )
    default_evidence: int = Field(
        default=5,
        ge=0,
        description="CROSSGUARD_AUDIO_DEFAULT_EVIDENCE: evidence items returned when the "
        "request's max_evidence is 0.",
    )
    max_evidence: int = Field(
        default=32,
        ge=0,
        description="CROSSGUARD_AUDIO_MAX_EVIDENCE: cap on evidence items, whatever the request "
        "asks.",
    )

    # --- event tagger (optional; no default weights exist offline) ---------------------------
    tagger_model: Path | None = Field(
        default=None,
        description="CROSSGUARD_AUDIO_TAGGER_MODEL: ONNX audio event tagger (input: 16 kHz mono "
        "float32 waveform [batch, samples]; output: [batch, labels]); empty = no tagger.",
    )
    tagger_labels: Path | None = Field(
        default=None,
        description="CROSSGUARD_AUDIO_TAGGER_LABELS: the tagger's label file, one label per line "
        "in output order, optionally '<TAB>category' mapping it to a taxonomy category (e.g. "
        "'Gunshot, gunfire<TAB>violence'); unmapped labels are not reported.",
    )
    tagger_window_seconds: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="CROSSGUARD_AUDIO_TAGGER_WINDOW_SECONDS: audio per tagger input.",
    )
    tagger_output: Literal["probabilities", "logits"] = Field(
        default="probabilities",
        description="CROSSGUARD_AUDIO_TAGGER_OUTPUT: whether the tagger outputs probabilities "
        "or logits (a sigmoid is applied).",
    )
    tagger_threshold: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="CROSSGUARD_AUDIO_TAGGER_THRESHOLD: event probability reported as evidence.",
    )

    @model_validator(mode="after")
    def _check(self) -> AudioServiceSettings:
        if self.min_sample_rate > self.max_sample_rate:
            raise ValueError("min_sample_rate must not exceed max_sample_rate")
        if (self.tagger_model is None) != (self.tagger_labels is None):
            raise ValueError("set both CROSSGUARD_AUDIO_TAGGER_MODEL and _LABELS, or neither")
        return self


class AudioServerSettings(ServerSettings[AudioServiceSettings]):
    """Everything `python -m crossguard.audio` reads from the environment."""

    def __init__(
        self,
        audio: AudioServiceSettings | None = None,
        grpc: GrpcServerSettings | None = None,
        model: ModelSettings | None = None,
    ) -> None:
        super().__init__(audio or AudioServiceSettings(), grpc, model)
