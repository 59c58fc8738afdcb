"""The audio safety model: decode → Silero VAD → Whisper on speech only → text models on the
transcript (+ an optional event tagger), one audio part at a time, window by window.

Implements the Model contract (crossguard.core.model_contract.Model[AudioInput,
AudioAnalysis]): `load`, `ready`, `predict(batch)`, `close`. `predict` is blocking and
thread-safe; each part is independent. Memory per part stays bounded whatever its duration:
one decoded window, the open speech span, and the speech packed for the next Whisper call.

Transcripts are scored by the text service's own model (crossguard.text.model.TextModel,
in-process: it is small): a short transcript whole, as the text service scores a short text;
a long one per segment and per pair of adjacent segments (a sentence cut by a pause is still
read whole), each category's score its maximum over those pieces. The tightest pieces at or
above the text model's threshold are the evidence, with their time range.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from crossguard.audio.asr import (
    GAP_SECONDS,
    ChunkTranscript,
    TranscriptSegment,
    WhisperOptions,
    WhisperTranscriber,
)
from crossguard.audio.decode import SAMPLE_RATE, AudioInfo, AudioLimits, decode_windows
from crossguard.audio.settings import AudioServiceSettings
from crossguard.audio.tagger import AudioEvent, EventTagger, TaggerStream
from crossguard.audio.vad import SileroVad, SpeechSpan, VadParams
from crossguard.core.errors import NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

VAD_ENTRY = "silero-vad"


class TextScorer(Protocol):
    """What the audio model needs of crossguard.text.model.TextModel."""

    version: str

    def load(self) -> None: ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...

    def predict(self, batch: Sequence[str]) -> list[dict[Category, float]]: ...

    @property
    def categories(self) -> list[Category]: ...

    @property
    def thresholds(self) -> dict[Category, float]: ...

    @property
    def model_infos(self) -> list[tuple[str, str]]: ...


@dataclass(frozen=True)
class AudioInput:
    part_id: str
    data: bytes


@dataclass(frozen=True)
class AudioEvidence:
    """Why a category scored: the audio time range [start, end) in seconds and the transcript
    read there (or the event label)."""

    part_id: str
    category: Category
    weight: float
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class AudioAnalysis:
    part_id: str
    info: AudioInfo
    seconds: float
    speech_seconds: float
    segments: list[TranscriptSegment]
    language: str  # "" when nothing was transcribed
    language_probability: float
    scores: dict[Category, float]
    evidence: list[AudioEvidence]
    events: list[AudioEvent] = field(default_factory=list)
    # Guards that fired on any chunk (token_cap, repetition, no_speech).
    flags: tuple[str, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds

    @property
    def transcript(self) -> str:
        return " ".join(s.text for s in self.segments)


def limits_of(settings: AudioServiceSettings) -> AudioLimits:
    return AudioLimits(
        max_bytes=settings.max_bytes,
        max_seconds=settings.max_seconds,
        min_sample_rate=settings.min_sample_rate,
        max_sample_rate=settings.max_sample_rate,
        max_channels=settings.max_channels,
        window_seconds=settings.window_seconds,
    )


def whisper_options(settings: AudioServiceSettings) -> WhisperOptions:
    return WhisperOptions(
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        threads=settings.whisper_threads,
        workers=settings.batch_workers,
        beam_size=settings.beam_size,
        language=settings.language,
        no_speech_threshold=settings.no_speech_threshold,
        max_tokens_per_second=settings.max_tokens_per_second,
        max_repeats=settings.max_repeats,
    )


class AudioModel:
    """VAD + Whisper + text model (+ tagger) behind the Model contract."""

    name = "crossguard-audio"

    def __init__(
        self,
        text_model: TextScorer,
        settings: AudioServiceSettings | None = None,
        model_settings: ModelSettings | None = None,
        repository: ModelRepository | None = None,
        *,
        owns_text_model: bool = False,
    ) -> None:
        """`owns_text_model`: close the text model with this one (the server's own copy);
        leave it alone when it is shared (tests, evaluation)."""
        self.settings = settings or AudioServiceSettings()
        self.owns_text_model = owns_text_model
        self.model_settings = model_settings or ModelSettings()
        self.repository = repository or ModelRepository(self.model_settings.model_repository)
        self.text_model = text_model
        self.version = "unloaded"
        self.limits = limits_of(self.settings)
        s = self.settings
        self.vad_params = VadParams(
            threshold=s.vad_threshold,
            min_speech_ms=s.vad_min_speech_ms,
            min_silence_ms=s.vad_min_silence_ms,
            speech_pad_ms=s.vad_speech_pad_ms,
            max_segment_seconds=min(s.max_segment_seconds, s.chunk_seconds),
        )
        self._lock = threading.Lock()
        self._vad: SileroVad | None = None
        self._asr: WhisperTranscriber | None = None
        self._tagger: EventTagger | None = None
        self._infos: list[tuple[str, str]] = []
        self._categories: list[Category] = []
        self._thresholds: dict[Category, float] = {}

    # -- Model contract -----------------------------------------------------------------------

    def load(self) -> None:
        with self._lock:
            if self._asr is not None:
                return
            if not self.text_model.ready():
                self.text_model.load()
            vad_entry = self.repository.get(VAD_ENTRY)
            asr_entry = self.repository.get(self.settings.whisper_model)
            for entry in (vad_entry, asr_entry):
                entry.verify()
            vad = SileroVad(vad_entry, self.model_settings)
            asr = WhisperTranscriber(asr_entry, whisper_options(self.settings))
            tagger = None
            s = self.settings
            if s.tagger_model is not None and s.tagger_labels is not None:
                tagger = EventTagger(
                    s.tagger_model,
                    s.tagger_labels,
                    self.model_settings,
                    window_seconds=s.tagger_window_seconds,
                    output=s.tagger_output,
                    threshold=s.tagger_threshold,
                )
            infos = [
                (vad_entry.manifest.name, vad_entry.manifest.version),
                (asr_entry.manifest.name, asr.version),
                *self.text_model.model_infos,
            ]
            categories = list(self.text_model.categories)
            thresholds = dict(self.text_model.thresholds)
            if tagger is not None:
                infos.append((f"tagger:{tagger.name}", tagger.version))
                for cat in tagger.categories:
                    if cat not in categories:
                        categories.append(cat)
                    thresholds.setdefault(cat, tagger.threshold)
            self._infos, self._categories, self._thresholds = infos, categories, thresholds
            self.version = "+".join(f"{n}:{v}" for n, v in infos)
            self._vad, self._tagger, self._asr = vad, tagger, asr

    def ready(self) -> bool:
        return self._asr is not None and self.text_model.ready()

    def predict(self, batch: Sequence[AudioInput]) -> list[AudioAnalysis]:
        return [self.analyze(item.part_id, item.data) for item in batch]

    def close(self) -> None:
        with self._lock:
            self._vad = self._asr = self._tagger = None
            self.version = "unloaded"
            if self.owns_text_model:
                self.text_model.close()

    @property
    def categories(self) -> list[Category]:
        self._require()
        return list(self._categories)

    @property
    def thresholds(self) -> dict[Category, float]:
        self._require()
        return dict(self._thresholds)

    @property
    def model_infos(self) -> list[tuple[str, str]]:
        self._require()
        return list(self._infos)

    @property
    def transcriber(self) -> WhisperTranscriber:
        return self._require()[1]

    @property
    def vad(self) -> SileroVad:
        return self._require()[0]

    # -- analysis -----------------------------------------------------------------------------

    def analyze(self, part_id: str, data: bytes) -> AudioAnalysis:
        """Decode, find speech, transcribe it, score the transcript (blocking).

        Raises AudioDecodeError / LimitExceeded (InvalidInput) for bad parts."""
        vad, asr, tagger = self._require()
        times: defaultdict[str, float] = defaultdict(float)
        t0 = time.perf_counter()
        info, windows = decode_windows(data, self.limits)
        times["decode"] += time.perf_counter() - t0
        run = _PartRun(vad, asr, tagger, self.vad_params, self.settings.chunk_seconds, times)
        seconds = 0.0
        while True:
            t = time.perf_counter()
            window = next(windows, None)
            times["decode"] += time.perf_counter() - t
            if window is None:
                break
            seconds += len(window) / SAMPLE_RATE
            run.feed(window)
        run.finish()

        t = time.perf_counter()
        scores, evidence = self.score_transcript(part_id, run.segments)
        times["text"] += time.perf_counter() - t
        events = run.tagger_stream.events if run.tagger_stream else []
        if run.tagger_stream:
            for cat, value in run.tagger_stream.best.items():
                scores[cat] = max(scores.get(cat, 0.0), value)
            evidence.extend(
                AudioEvidence(part_id, e.category, e.score, e.start, e.end, f"event: {e.label}")
                for e in sorted(events, key=lambda e: -e.score)
            )
        language, probability = run.language()
        return AudioAnalysis(
            part_id=part_id,
            info=info,
            seconds=seconds,
            speech_seconds=run.speech_seconds,
            segments=run.segments,
            language=language,
            language_probability=probability,
            scores=scores,
            evidence=evidence,
            events=list(events),
            flags=tuple(dict.fromkeys(f for c, _ in run.chunks for f in c.flags)),
            timings={k: v * 1000.0 for k, v in times.items()},
        )

    def score_transcript(
        self, part_id: str, segments: list[TranscriptSegment]
    ) -> tuple[dict[Category, float], list[AudioEvidence]]:
        """Scores and evidence of a transcript. A short transcript (at most
        CROSSGUARD_AUDIO_WHOLE_TRANSCRIPT_WORDS words) is scored whole, as the text service
        scores a short text; a longer one is the maximum over its segments and pairs of
        neighbouring segments. Segments and pairs that reach a flagged category's threshold
        place it in time; when none does alone, the whole transcript's range is the evidence."""
        scores: dict[Category, float] = dict.fromkeys(self._categories, 0.0)
        if not segments:
            return scores, []
        whole_text = " ".join(s.text for s in segments)
        short = len(whole_text.split()) <= self.settings.whole_transcript_words
        # Pieces: every segment, then every pair of neighbours, then (short) the whole.
        pieces: list[tuple[int, int]] = [(i, i + 1) for i in range(len(segments))]
        pieces += [(i, i + 2) for i in range(len(segments) - 1)]
        if short and len(segments) > 2:
            pieces.append((0, len(segments)))
        texts = [" ".join(s.text for s in segments[a:b]) for a, b in pieces]
        probs = self.text_model.predict(texts)
        if short:
            # The whole transcript: the last piece (or the only segment, or the pair).
            whole = next(
                p
                for (a, b), p in zip(pieces[::-1], probs[::-1], strict=True)
                if (a, b) == (0, len(segments))
            )
            scores.update({cat: float(v) for cat, v in whole.items()})
        else:
            for p in probs:
                for cat, value in p.items():
                    scores[cat] = max(scores.get(cat, 0.0), float(value))
        flagged = [c for c in scores if scores[c] >= self._thresholds.get(c, 0.5)]
        evidence: list[AudioEvidence] = []
        for cat in sorted(flagged, key=lambda c: (-scores[c], c.value)):
            reached = [
                AudioEvidence(
                    part_id, cat, float(p[cat]), segments[a].start, segments[b - 1].end, t
                )
                for (a, b), t, p in zip(pieces, texts, probs, strict=True)
                if p.get(cat, 0.0) >= self._thresholds.get(cat, 0.5)
            ]
            # The tightest range that explains the category: a single segment, else a pair,
            # else the whole transcript.
            for size in (1, 2, len(segments)):
                chosen = [e for e in reached if _span_size(e, segments) == size]
                if chosen:
                    break
            else:
                chosen = [
                    AudioEvidence(
                        part_id, cat, scores[cat], segments[0].start, segments[-1].end, whole_text
                    )
                ]
            evidence.extend(sorted(chosen, key=lambda e: (-e.weight, e.start)))
        return scores, evidence

    def _require(self) -> tuple[SileroVad, WhisperTranscriber, EventTagger | None]:
        vad, asr = self._vad, self._asr
        if vad is None or asr is None:
            raise NotReady("audio model is not loaded; call load() first")
        return vad, asr, self._tagger


def _span_size(e: AudioEvidence, segments: list[TranscriptSegment]) -> int:
    """How many consecutive segments an evidence item covers."""
    return sum(1 for s in segments if e.start <= s.start and s.end <= e.end)


class _PartRun:
    """The streaming state of one part: VAD stream, audio kept for speech, packed chunks."""

    def __init__(
        self,
        vad: SileroVad,
        asr: WhisperTranscriber,
        tagger: EventTagger | None,
        params: VadParams,
        chunk_seconds: float,
        times: defaultdict[str, float],
    ) -> None:
        self.asr = asr
        self.vad_stream = vad.stream(params)
        self.tagger_stream: TaggerStream | None = tagger.stream() if tagger else None
        self.pad = params.speech_pad_ms * SAMPLE_RATE // 1000
        self.chunk_samples = int(chunk_seconds * SAMPLE_RATE)
        self.gap_samples = int(GAP_SECONDS * SAMPLE_RATE)
        self.times = times
        self.buf = np.zeros(0, dtype=np.float32)
        self.buf_start = 0  # sample index (of the part) of buf[0]
        self.pending: list[tuple[SpeechSpan, np.ndarray]] = []
        self.pending_samples = 0
        self.segments: list[TranscriptSegment] = []
        self.chunks: list[tuple[ChunkTranscript, float]] = []  # with its speech seconds
        self.speech_seconds = 0.0

    def feed(self, window: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, window]) if len(self.buf) else window
        if self.tagger_stream is not None:
            t = time.perf_counter()
            self.tagger_stream.feed(window)
            self.times["tagger"] += time.perf_counter() - t
        t = time.perf_counter()
        closed = self.vad_stream.feed(window)
        self.times["vad"] += time.perf_counter() - t
        self._take(closed)
        # Audio before this is needed by no span, open or future.
        open_start = self.vad_stream.open_start
        keep = self.vad_stream.position - self.pad if open_start is None else open_start
        drop = min(max(0, keep - self.buf_start), len(self.buf))
        if drop:
            self.buf = np.array(self.buf[drop:], dtype=np.float32)
            self.buf_start += drop

    def finish(self) -> None:
        t = time.perf_counter()
        closed = self.vad_stream.finish()
        self.times["vad"] += time.perf_counter() - t
        self._take(closed)
        self._flush()
        if self.tagger_stream is not None:
            t = time.perf_counter()
            self.tagger_stream.finish()
            self.times["tagger"] += time.perf_counter() - t

    def _take(self, spans: list[SpeechSpan]) -> None:
        for span in spans:
            end = min(span.end, self.buf_start + len(self.buf))
            start = max(span.start, self.buf_start)
            if end <= start:
                continue
            audio = self.buf[start - self.buf_start : end - self.buf_start].copy()
            if self.pending and self._packed_samples(len(audio)) > self.chunk_samples:
                self._flush()
            self.pending.append((SpeechSpan(start, end), audio))
            self.pending_samples += len(audio)

    def _packed_samples(self, extra: int) -> int:
        """Samples of the packed audio if a span of `extra` samples joined the pending ones."""
        return self.pending_samples + extra + len(self.pending) * self.gap_samples

    def _flush(self) -> None:
        if not self.pending:
            return
        pieces, self.pending, self.pending_samples = self.pending, [], 0
        t = time.perf_counter()
        chunk = self.asr.transcribe(pieces)
        self.times["asr"] += time.perf_counter() - t
        seconds = sum(len(a) for _, a in pieces) / SAMPLE_RATE
        self.speech_seconds += seconds
        self.chunks.append((chunk, seconds))
        self.segments.extend(chunk.segments)

    def language(self) -> tuple[str, float]:
        """The language of the most speech that produced a transcript ("" when none did)."""
        weight: defaultdict[str, float] = defaultdict(float)
        prob: dict[str, float] = {}
        for chunk, seconds in self.chunks:
            if chunk.segments:
                weight[chunk.language] += seconds
                prob[chunk.language] = max(
                    prob.get(chunk.language, 0.0), chunk.language_probability
                )
        if not weight:
            return "", 0.0
        lang = max(weight, key=lambda k: weight[k])
        return lang, prob[lang]
