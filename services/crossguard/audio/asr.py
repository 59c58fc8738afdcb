"""Speech to text: Whisper through faster-whisper (CTranslate2), loaded offline from a model
repository directory, with the guards of crossguard.audio.guards.

The analyser hands over chunks of speech (VAD spans packed back to back, silence removed);
transcripts come back with times on the original audio's clock (faster-whisper's
SpeechTimestampsMap undoes the packing).
"""

from __future__ import annotations

import bisect
import logging
import math
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

log = logging.getLogger(__name__)

# Whisper's decoder holds 448 positions, a few of which the prompt takes.
MAX_DECODE_TOKENS = 440
# Silence put between packed speech spans.
GAP_SECONDS = 0.5
# How close to a span's end a segment start must be to be moved to the next span (TimeMap).
SNAP_SECONDS = 0.6


@dataclass(frozen=True)
class TimeMap:
    """Packed-audio seconds -> the part's seconds: per span, where it starts in the packed
    audio, where in the part, and how long it is."""

    packed_starts: list[float]
    part_starts: list[float]
    lengths: list[float]

    def original(self, t: float, is_end: bool = False) -> float:
        """A time in the packed audio on the part's clock. A time in a gap belongs to the span
        before it (an end) or after it (a start)."""
        i = self.span_at(t)
        offset = t - self.packed_starts[i]
        if offset > self.lengths[i] and not is_end and i + 1 < len(self.part_starts):
            return self.part_starts[i + 1]
        return round(self.part_starts[i] + min(max(offset, 0.0), self.lengths[i]), 3)

    def span_at(self, t: float) -> int:
        return max(0, bisect.bisect_right(self.packed_starts, t) - 1)

    def span_of_word(self, t: float) -> int:
        """The span a word starting at packed time `t` belongs to (one starting in a gap:
        the next span)."""
        i = self.span_at(t)
        if t > self.packed_starts[i] + self.lengths[i] and i + 1 < len(self.packed_starts):
            return i + 1
        return i

    def in_span(self, i: int, t: float) -> float:
        """Packed time `t` on the part's clock, clamped to span `i`."""
        offset = min(max(t - self.packed_starts[i], 0.0), self.lengths[i])
        return round(self.part_starts[i] + offset, 3)

    def segment(self, start: float, end: float) -> tuple[float, float]:
        """A Whisper segment's packed (start, end) on the part's clock. Whisper often starts a
        segment where the previous one ended: a start within SNAP_SECONDS of the end of its
        span, for a segment that ends in a later span, moves to that later span's start."""
        i, j = self.span_at(start), self.span_at(end)
        if j > i and self.packed_starts[i] + self.lengths[i] - start <= SNAP_SECONDS:
            start = self.packed_starts[i + 1]
        first = self.original(start)
        return first, max(first, self.original(end, is_end=True))


def split_by_span(seg: Any, timemap: TimeMap) -> list[tuple[str, float, float, float]]:
    """A Whisper segment as (text, start, end, share of its words) per speech span it covers,
    on the part's clock: split at span boundaries by its word times when it has them, else
    whole (TimeMap.segment)."""
    words = list(getattr(seg, "words", None) or [])
    if not words:
        start, end = timemap.segment(seg.start, seg.end)
        return [(str(seg.text), start, end, 1.0)]
    groups: list[tuple[int, list[Any]]] = []
    for word in words:
        i = timemap.span_of_word(float(word.start))
        if groups and groups[-1][0] == i:
            groups[-1][1].append(word)
        else:
            groups.append((i, [word]))
    return [
        (
            "".join(str(w.word) for w in group),
            timemap.in_span(i, float(group[0].start)),
            timemap.in_span(i, float(group[-1].end)),
            len(group) / len(words),
        )
        for i, group in groups
    ]


def pack_spans(pieces: Sequence[tuple[SpeechSpan, np.ndarray]]) -> tuple[np.ndarray, TimeMap]:
    """The pieces' audio back to back with GAP_SECONDS of silence between, and its time map."""
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    parts: list[np.ndarray] = []
    packed_starts: list[float] = []
    position = 0
    for i, (_, audio) in enumerate(pieces):
        if i:
            parts.append(gap)
            position += len(gap)
        packed_starts.append(position / SAMPLE_RATE)
        parts.append(audio)
        position += len(audio)
    timemap = TimeMap(
        packed_starts,
        [span.start / SAMPLE_RATE for span, _ in pieces],
        [len(audio) / SAMPLE_RATE for _, audio in pieces],
    )
    packed = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    return packed, timemap


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
    """ "cuda" when requested, or "auto" and CTranslate2 sees a CUDA device; else "cpu"."""
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
        self.multilingual = bool(entry.manifest.preprocessing.get("multilingual", True))
        self.device = resolve_device(options.device)
        try:
            self.model: Any = self._load(WhisperModel)
            if self.device == "cuda":
                # CTranslate2 opens cuBLAS/cuDNN at the first GEMM, not at load: decode one
                # token of silence now, so that a node without them fails here.
                self.model.transcribe(np.zeros(SAMPLE_RATE // 2, np.float32), max_new_tokens=1)
        except RuntimeError as exc:
            if options.device != "auto" or self.device != "cuda":
                raise
            # `auto` promised "CUDA when it works": CTranslate2 4.x needs CUDA 12's cuBLAS,
            # which a CUDA-13-only image lacks (docs/audio.md); serve on the CPU rather than
            # crash-loop, and say so.
            log.warning("Whisper on CUDA failed (%s); falling back to the CPU", exc)
            self.device = "cpu"
            self.model = self._load(WhisperModel)
        from faster_whisper.tokenizer import Tokenizer

        # Token ids from end-of-text up are special (timestamps, language, task).
        self.eot: int = Tokenizer(
            self.model.hf_tokenizer,
            self.model.model.is_multilingual,
            task="transcribe",
            language="en",
        ).eot

    def _load(self, whisper_model: Any) -> Any:
        o = self.options
        self.compute_type = (
            o.compute_type
            if o.compute_type != "auto"
            else ("float16" if self.device == "cuda" else "int8")
        )
        return whisper_model(
            str(self.entry.path),
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=o.threads or max(1, available_cpus() // o.workers),
            num_workers=o.workers,
            local_files_only=True,
        )

    @property
    def version(self) -> str:
        return f"{self.entry.manifest.version}-{self.compute_type}"

    def transcribe(self, pieces: Sequence[tuple[SpeechSpan, np.ndarray]]) -> ChunkTranscript:
        """Transcribe speech spans of one part (each with its audio), packed back to back with
        GAP_SECONDS of silence between them (glued speech runs sentences together and makes
        Whisper misread words at the joins). At most ~30 s per call."""
        o = self.options
        packed, timemap = pack_spans(pieces)
        speech = sum(len(a) for _, a in pieces) / SAMPLE_RATE
        budget = token_budget(speech, o.max_tokens_per_second)
        # The decoder's limit counts timestamp tokens too (a pair per segment, segments of a
        # second or more): the cap itself is checked on text tokens below.
        decode_limit = min(MAX_DECODE_TOKENS, budget + 2 * math.ceil(len(packed) / SAMPLE_RATE) + 4)
        language = o.language or (None if self.multilingual else "en")
        segments_iter, info = self.model.transcribe(
            packed,
            language=language,
            beam_size=o.beam_size,
            temperature=0.0,
            condition_on_previous_text=False,
            no_speech_threshold=o.no_speech_threshold,
            max_new_tokens=decode_limit,
            vad_filter=False,
            without_timestamps=False,
            # Word times only where a segment could straddle two spans: they split it there.
            word_timestamps=len(pieces) > 1,
        )
        raw = list(segments_iter)
        text_tokens = sum(t < self.eot for s in raw for t in s.tokens)
        all_tokens = sum(len(s.tokens) for s in raw)
        chunk_flags: list[str] = []
        if text_tokens > budget or all_tokens >= decode_limit - 1:
            chunk_flags.append(TOKEN_CAP)
        out: list[TranscriptSegment] = []
        looped = False
        for seg in raw:
            tokens = sum(t < self.eot for t in seg.tokens)
            for raw_text, start, end, share in split_by_span(seg, timemap):
                flags: list[str] = []
                text, repeated, looped = collapse_repetition(raw_text.strip(), o.max_repeats)
                if repeated:
                    flags.append(REPETITION)
                    chunk_flags.append(REPETITION)
                if seg.no_speech_prob > o.no_speech_threshold:
                    flags.append(NO_SPEECH)
                if not text:
                    continue
                out.append(
                    TranscriptSegment(
                        start=float(start),
                        end=float(end),
                        text=text,
                        tokens=round(tokens * share),
                        avg_logprob=float(seg.avg_logprob),
                        no_speech_prob=float(seg.no_speech_prob),
                        flags=tuple(flags),
                    )
                )
                if looped:
                    break
            if looped:
                break  # what follows a loop that ran to its segment's end is the loop going on
        return ChunkTranscript(
            segments=out,
            language=str(info.language),
            language_probability=float(info.language_probability),
            flags=tuple(dict.fromkeys(chunk_flags)),
        )
