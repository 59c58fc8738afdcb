"""Speech to text: Whisper through faster-whisper (CTranslate2), loaded offline from a model
repository directory, with the guards of crossguard.audio.guards.

The analyser hands over chunks of speech (VAD spans packed back to back, silence removed);
transcripts come back with times on the original audio's clock (faster-whisper's
SpeechTimestampsMap undoes the packing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from crossguard.audio.guards import (
    NO_SPEECH,
    REPETITION,
    TOKEN_CAP,
    collapse_repetition,
    token_budget,
)
from crossguard.audio.vad import SAMPLE_RATE, SpeechSpan
from crossguard.core.cpus import available_cpus
from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelEntry

# Whisper's decoder holds 448 positions, a few of which the prompt takes.
MAX_DECODE_TOKENS = 440


@dataclass(frozen=True)
class TranscriptSegment:
    """A piece of transcript; `start`/`end` in seconds from the start of the audio part."""

    start: float
    end: float
    text: str
    tokens: int
    avg_logprob: float
    no_speech_prob: float
    # Guards that fired (crossguard.audio.guards: token_cap, repetition).
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChunkTranscript:
    segments: list[TranscriptSegment]
    language: str
    language_probability: float
    flags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class WhisperOptions:
    device: str = "auto"
    compute_type: str = "auto"
    threads: int = 0
    workers: int = 1
    beam_size: int = 1
    language: str = ""
    no_speech_threshold: float = 0.6
    max_tokens_per_second: float = 6.0
    max_repeats: int = 3


def resolve_device(requested: str) -> str:
    """"cuda" when requested, or "auto" and CTranslate2 sees a CUDA device; else "cpu"."""
    if requested != "auto":
        return requested
    import ctranslate2

    try:
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except RuntimeError:  # a CPU-only CTranslate2 build
        return "cpu"


class WhisperTranscriber:
    """faster-whisper's WhisperModel over a repository entry; thread-safe up to
    `options.workers` concurrent calls (CTranslate2 workers)."""

    def __init__(self, entry: ModelEntry, options: WhisperOptions) -> None:
        if entry.manifest.preprocessing.get("engine") != "ctranslate2":
            raise ModelError(f"{entry.path}: not a CTranslate2 Whisper entry")
        from faster_whisper import WhisperModel

        self.entry = entry
        self.options = options
        self.device = resolve_device(options.device)
        self.compute_type = (
            options.compute_type
            if options.compute_type != "auto"
            else ("float16" if self.device == "cuda" else "int8")
        )
        threads = options.threads or max(1, available_cpus() // options.workers)
        self.multilingual = bool(entry.manifest.preprocessing.get("multilingual", True))
        self.model: Any = WhisperModel(
            str(entry.path),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=threads,
            num_workers=options.workers,
            local_files_only=True,
        )

    @property
    def version(self) -> str:
        return f"{self.entry.manifest.version}-{self.compute_type}"

    def transcribe(self, audio: np.ndarray, spans: Sequence[SpeechSpan]) -> ChunkTranscript:
        """Transcribe the speech `spans` (sample ranges of the part) whose audio is `audio`,
        the spans' samples back to back. At most ~30 s of speech per call."""
        from faster_whisper.vad import SpeechTimestampsMap

        o = self.options
        seconds = len(audio) / SAMPLE_RATE
        budget = min(MAX_DECODE_TOKENS, token_budget(seconds, o.max_tokens_per_second))
        language = o.language or (None if self.multilingual else "en")
        segments_iter, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=o.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            no_speech_threshold=o.no_speech_threshold,
            max_new_tokens=budget,
            vad_filter=False,
            without_timestamps=False,
        )
        raw = list(segments_iter)
        timemap = SpeechTimestampsMap(
            [{"start": s.start, "end": s.end} for s in spans], SAMPLE_RATE
        )
        # The spans' sample positions are absolute, so the map's "silence before" includes the
        # audio before the first span: times come out on the part's clock.
        used = sum(len(s.tokens) for s in raw)
        chunk_flags: list[str] = []
        if used >= budget:
            chunk_flags.append(TOKEN_CAP)
        out: list[TranscriptSegment] = []
        for seg in raw:
            flags: list[str] = []
            text, looped = collapse_repetition(seg.text.strip(), o.max_repeats)
            if looped:
                flags.append(REPETITION)
            if seg.no_speech_prob > o.no_speech_threshold:
                flags.append(NO_SPEECH)
            if not text:
                continue
            start = timemap.get_original_time(seg.start)
            end = timemap.get_original_time(seg.end, is_end=True)
            out.append(
                TranscriptSegment(
                    start=float(start),
                    end=float(max(end, start)),
                    text=text,
                    tokens=len(seg.tokens),
                    avg_logprob=float(seg.avg_logprob),
                    no_speech_prob=float(seg.no_speech_prob),
                    flags=tuple(flags),
                )
            )
            if looped:
                chunk_flags.append(REPETITION)
                break  # what follows a loop is the loop going on
        return ChunkTranscript(
            segments=out,
            language=str(info.language),
            language_probability=float(info.language_probability),
            flags=tuple(dict.fromkeys(chunk_flags)),
        )
