"""Voice activity detection with Silero VAD (ONNX, from the model repository), as a stream.

The graph is run directly with onnxruntime: 512 new samples at 16 kHz per call, preceded by the
previous call's last 64 samples, with the recurrent state carried between calls (what
silero-vad's OnnxWrapper does; the package itself needs torch, so only its ONNX file is used).
Segmenting follows silero-vad's get_speech_timestamps (open at `threshold`, close after
`min_silence_ms` below `threshold - 0.15`, drop segments shorter than `min_speech_ms`, pad both
sides), rewritten to work on a stream: segments are emitted as soon as they close, so a caller
can transcribe and forget audio as it goes (bounded memory for long audio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelEntry
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort

SAMPLE_RATE = 16_000
WINDOW = 512
CONTEXT = 64
STATE_SHAPE = (2, 1, 128)


@dataclass(frozen=True)
class VadParams:
    threshold: float = 0.5
    min_speech_ms: int = 250
    min_silence_ms: int = 300
    speech_pad_ms: int = 200
    max_segment_seconds: float = 28.0


@dataclass(frozen=True)
class SpeechSpan:
    """Speech from sample `start` to sample `end` (16 kHz, from the start of the audio)."""

    start: int
    end: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


class SileroVad:
    """The Silero VAD graph; `stream()` gives an independent segmenter per audio part.
    Thread-safe: onnxruntime sessions are, and every stream keeps its own state."""

    def __init__(self, entry: ModelEntry, settings: ModelSettings) -> None:
        rate = int(entry.manifest.preprocessing.get("sample_rate", SAMPLE_RATE))
        window = int(entry.manifest.preprocessing.get("window_samples", WINDOW))
        if rate != SAMPLE_RATE or window != WINDOW:
            raise ModelError(
                f"{entry.path}: expected a 16 kHz / 512-sample Silero VAD, manifest says "
                f"{rate} Hz / {window}"
            )
        self.entry = entry
        # One intra-op thread: each call is tiny (576 samples), threads would only add overhead.
        self.session: ort.InferenceSession = session_from_settings(
            entry.onnx_path, settings, cpu=True, intra_op_threads=1
        )
        self._sr = np.array(SAMPLE_RATE, dtype=np.int64)

    def stream(self, params: VadParams) -> VadStream:
        return VadStream(self, params)

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability of every whole 512-sample window of `audio` (fresh state)."""
        stream = self.stream(VadParams())
        probs: list[float] = []
        stream.feed(audio, probs)
        return np.asarray(probs, dtype=np.float32)

    def _run(self, x: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        prob, new_state = self.session.run(None, {"input": x, "state": state, "sr": self._sr})
        return float(prob[0, 0]), new_state


class VadStream:
    """Feed 16 kHz mono audio in any chunk sizes; get closed speech spans back."""

    def __init__(self, vad: SileroVad, params: VadParams) -> None:
        self._vad = vad
        self.params = params
        ms = SAMPLE_RATE // 1000
        self._min_speech = params.min_speech_ms * ms
        self._min_silence = params.min_silence_ms * ms
        self._pad = params.speech_pad_ms * ms
        self._max_speech = int(params.max_segment_seconds * SAMPLE_RATE) - 2 * self._pad
        self._neg_threshold = max(params.threshold - 0.15, 0.01)
        self._state = np.zeros(STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, CONTEXT), dtype=np.float32)
        self._leftover = np.zeros(0, dtype=np.float32)
        self.position = 0  # samples run through the graph so far
        self._triggered = False
        self._start = 0
        self._temp_end = 0
        self._last_end = 0  # end of the last emitted (padded) span: spans never overlap
        self.max_probability = 0.0

    @property
    def open_start(self) -> int | None:
        """Where the padded span now open would start (None when no speech is open): audio
        before min(this, position - pad) is no longer needed by this stream."""
        if not self._triggered:
            return None
        return max(self._last_end, self._start - self._pad)

    def feed(self, audio: np.ndarray, probs: list[float] | None = None) -> list[SpeechSpan]:
        """Run every whole window of `leftover + audio`; returns the spans that closed."""
        data = np.concatenate([self._leftover, audio]) if len(self._leftover) else audio
        whole = (len(data) // WINDOW) * WINDOW
        closed: list[SpeechSpan] = []
        for offset in range(0, whole, WINDOW):
            x = np.concatenate([self._context, data[None, offset : offset + WINDOW]], axis=1)
            prob, self._state = self._vad._run(x, self._state)
            self._context = x[:, -CONTEXT:]
            if probs is not None:
                probs.append(prob)
            self.max_probability = max(self.max_probability, prob)
            self._step(prob, self.position, closed)
            self.position += WINDOW
        self._leftover = np.array(data[whole:], dtype=np.float32)
        return closed

    def finish(self) -> list[SpeechSpan]:
        """End of audio: close an open span (the last partial window is not scored)."""
        closed: list[SpeechSpan] = []
        end = self.position + len(self._leftover)
        if self._triggered and end - self._start >= self._min_speech:
            self._emit(self._start, end, closed, total=end)
        self._triggered = False
        return closed

    def _step(self, prob: float, pos: int, closed: list[SpeechSpan]) -> None:
        p = self.params
        if prob >= p.threshold and self._temp_end:
            self._temp_end = 0
        if prob >= p.threshold and not self._triggered:
            self._triggered = True
            self._start = pos
            return
        if self._triggered and pos + WINDOW - self._start > self._max_speech:
            # Too long for one Whisper window: cut here and go on with a new span.
            self._emit(self._start, pos + WINDOW, closed)
            self._start = pos + WINDOW
            self._temp_end = 0
            return
        if prob < self._neg_threshold and self._triggered:
            if not self._temp_end:
                self._temp_end = pos
            if pos - self._temp_end >= self._min_silence:
                if self._temp_end - self._start >= self._min_speech:
                    self._emit(self._start, self._temp_end, closed)
                self._triggered = False
                self._temp_end = 0

    def _emit(
        self, start: int, end: int, closed: list[SpeechSpan], total: int | None = None
    ) -> None:
        padded_start = max(self._last_end, start - self._pad, 0)
        padded_end = end + self._pad
        if total is not None:
            padded_end = min(padded_end, total)
        closed.append(SpeechSpan(padded_start, padded_end))
        self._last_end = padded_end


def speech_spans(
    vad: SileroVad, chunks: Sequence[np.ndarray], params: VadParams
) -> list[SpeechSpan]:
    """All speech spans of audio given as consecutive chunks (convenience for tests and eval)."""
    stream = vad.stream(params)
    spans: list[SpeechSpan] = []
    for chunk in chunks:
        spans.extend(stream.feed(chunk))
    spans.extend(stream.finish())
    return spans
