"""Whether one of an item's texts frames the people another names as vermin, filth, disease or
a target: the framing head of the model repository (framing-head, built from committed weights
by crossguard.models.framing_head) reads the sentence embeddings the service already computes
for text agreement and gives each text two probabilities, names_people and frames_as_harm.
An item's framing score is the highest names_people(a) x frames_as_harm(b) over ordered pairs
of two different texts: high only when one text shows people and another frames them, which
neither text's own scores can see (docs/fusion.md, "Framing head")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crossguard.consistency.parts import TextKind
from crossguard.core.errors import ModelError
from crossguard.core.model_repository import MODEL_FILE, ModelEntry
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort

LABELS = ("names_people", "frames_as_harm")


@dataclass(frozen=True)
class Framing:
    """The pair of texts that frames people most strongly."""

    value: float
    people: TextKind  # the text that names or shows people
    frame: TextKind  # the text that frames them
    people_score: float
    frame_score: float
    model: tuple[str, str]


def best_framing(
    kinds: Sequence[TextKind], probabilities: np.ndarray, model: tuple[str, str]
) -> Framing | None:
    """The highest names_people(a) x frames_as_harm(b), a != b, over `kinds`' rows of
    `probabilities` [n, 2]; None with fewer than two texts."""
    best: Framing | None = None
    for i, ki in enumerate(kinds):
        for j, kj in enumerate(kinds):
            if i == j:
                continue
            people, frame = float(probabilities[i, 0]), float(probabilities[j, 1])
            if best is None or people * frame > best.value:
                best = Framing(people * frame, ki, kj, people, frame, model)
    return best


class FramingHead:
    """framing-head's ONNX graph: embedding [n, dim] -> probabilities [n, 2]."""

    def __init__(self, entry: ModelEntry, settings: ModelSettings, encoder: tuple[str, str]):
        manifest = entry.manifest
        if tuple(manifest.labels) != LABELS:
            raise ModelError(
                f"{manifest.name}/{manifest.version}: labels {manifest.labels}, expected "
                f"{list(LABELS)} (not a framing head)"
            )
        # The probes were trained on one encoder's space: another's embeddings mean nothing.
        wanted = manifest.preprocessing.get("requires", {})
        if wanted and wanted.get(encoder[0]) != encoder[1]:
            raise ModelError(
                f"{manifest.name}/{manifest.version} reads {wanted} embeddings; the service's "
                f"encoder is {encoder[0]}/{encoder[1]}"
            )
        self.model = (manifest.name, manifest.version)
        self.session: ort.InferenceSession = session_from_settings(entry.file(MODEL_FILE), settings)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        return np.asarray(self.session.run(None, {"embedding": x})[0], dtype=np.float64)

    def framing(self, kinds: Sequence[TextKind], embeddings: np.ndarray) -> Framing | None:
        if len(kinds) < 2:
            return None
        return best_framing(kinds, self.probabilities(embeddings), self.model)
