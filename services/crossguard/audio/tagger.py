"""Audio event tagger backend (screams, gunshots, explosions, ...): any ONNX model taking a
16 kHz mono float32 waveform [batch, samples] and giving one score per label [batch, labels],
loaded from a configured path with a label file. No such weights install offline (PANNs,
YAMNet and PaSST all download theirs), so nothing is tagged unless one is configured.

Label file: one label per line, in the model's output order, optionally followed by a tab and
the taxonomy category the label raises ("Gunshot, gunfire<TAB>violence"); labels without a
category are computed but not reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import sha256_file
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    import onnxruntime as ort

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class TaggerLabel:
    name: str
    category: Category | None


@dataclass(frozen=True)
class AudioEvent:
    """An event label scored at or above the threshold in the window [start, end) seconds."""

    label: str
    category: Category
    score: float
    start: float
    end: float


def read_labels(path: Path) -> list[TaggerLabel]:
    return parse_labels(path.read_text(encoding="utf-8"), str(path))


def parse_labels(text: str, source: str) -> list[TaggerLabel]:
    """A label file's lines: 'label' or 'label<TAB>category'; blank lines are skipped."""
    labels: list[TaggerLabel] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, _, cat = line.partition("\t")
        category: Category | None = None
        if cat.strip():
            try:
                category = Category(cat.strip())
            except ValueError as exc:
                raise ModelError(f"{source}:{n}: unknown category {cat.strip()!r}") from exc
        labels.append(TaggerLabel(name.strip(), category))
    if not labels:
        raise ModelError(f"{source}: no labels")
    return labels


class EventTagger:
    """Scores fixed windows of a part's audio; `stream()` gives a per-part accumulator."""

    def __init__(
        self,
        model_path: Path,
        labels_path: Path,
        settings: ModelSettings,
        *,
        window_seconds: float,
        output: str = "probabilities",
        threshold: float = 0.5,
    ) -> None:
        if not model_path.is_file():
            raise ModelError(f"event tagger model {model_path} does not exist")
        if not labels_path.is_file():
            raise ModelError(f"event tagger label file {labels_path} does not exist")
        self.labels = read_labels(labels_path)
        self.session: ort.InferenceSession = session_from_settings(model_path, settings)
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2:
            raise ModelError(
                f"{model_path}: an event tagger takes one input [batch, samples]; it has "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        width = outputs[0].shape[-1]
        if isinstance(width, int) and width != len(self.labels):
            raise ModelError(
                f"{model_path} scores {width} labels but {labels_path} lists {len(self.labels)}"
            )
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        self.window = max(1, int(window_seconds * SAMPLE_RATE))
        self.logits = output == "logits"
        self.threshold = threshold
        self.name = model_path.stem
        self.version = sha256_file(model_path)[:12]

    @property
    def categories(self) -> list[Category]:
        return sorted({lab.category for lab in self.labels if lab.category}, key=lambda c: c.value)

    def score_windows(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Scores [len(windows), labels] in [0, 1]; short windows are zero-padded."""
        batch = np.zeros((len(windows), self.window), dtype=np.float32)
        for row, w in enumerate(windows):
            batch[row, : min(len(w), self.window)] = w[: self.window]
        out = np.asarray(self.session.run([self.output_name], {self.input_name: batch})[0])
        out = out.reshape(len(windows), -1).astype(np.float32)
        if self.logits:
            out = 1.0 / (1.0 + np.exp(-out))
        return out

    def stream(self) -> TaggerStream:
        return TaggerStream(self)


class TaggerStream:
    """Accumulates a part's audio into tagger windows and keeps, per category, the best score
    and the events at or above the threshold."""

    def __init__(self, tagger: EventTagger) -> None:
        self.tagger = tagger
        self._buf = np.zeros(0, dtype=np.float32)
        self._pos = 0  # samples of the part before _buf
        self.best: dict[Category, float] = {}
        self.events: list[AudioEvent] = []

    def feed(self, audio: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, audio]) if len(self._buf) else audio
        w = self.tagger.window
        n = len(self._buf) // w
        if n:
            self._score([self._buf[i * w : (i + 1) * w] for i in range(n)])
            self._buf = np.array(self._buf[n * w :], dtype=np.float32)

    def finish(self) -> None:
        # A tail shorter than a quarter window says little and would be mostly padding.
        if len(self._buf) >= self.tagger.window // 4:
            self._score([self._buf])
        self._buf = np.zeros(0, dtype=np.float32)

    def _score(self, windows: list[np.ndarray]) -> None:
        t = self.tagger
        scores = t.score_windows(windows)
        for row, w in enumerate(windows):
            start = self._pos / SAMPLE_RATE
            end = (self._pos + len(w)) / SAMPLE_RATE
            self._pos += len(w)
            for k, label in enumerate(t.labels):
                if label.category is None:
                    continue
                value = float(scores[row, k])
                if value > self.best.get(label.category, -1.0):
                    self.best[label.category] = value
                if value >= t.threshold:
                    self.events.append(AudioEvent(label.name, label.category, value, start, end))
