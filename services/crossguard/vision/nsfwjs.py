"""nsfwjs MobileNetV2 (converted to ONNX by crossguard.models.nsfwjs): a second opinion on
sexual content that also tells drawings from photos. Classes: Drawing, Hentai, Neutral, Porn,
Sexy. Preprocessing as nsfwjs: pixels / 255, then tf.image.resizeBilinear to 224×224 with
align_corners (no crop: the aspect ratio is not kept), NHWC float32.

Category score: sexual = Porn + Hentai + sexy_weight × Sexy (the manifest's `sexy_weight`, 0.5:
suggestive counts half), capped at 1. The class probabilities themselves are kept for reviewers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from crossguard.core.model_repository import ModelEntry, ModelRepository
from crossguard.core.onnx_entry_model import OnnxEntryModel
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    pass

NAME = "nsfwjs-mobilenet-v2"
SIZE = 224
LABELS = ("Drawing", "Hentai", "Neutral", "Porn", "Sexy")


def preprocess(rgb: np.ndarray, size: int = SIZE) -> np.ndarray:
    """[h, w, 3] uint8 -> [size, size, 3] float32 in [0, 1], bilinear with aligned corners."""
    img = rgb.astype(np.float32) / np.float32(255.0)
    h, w = img.shape[:2]
    ys = np.linspace(0.0, h - 1.0, size, dtype=np.float32)
    xs = np.linspace(0.0, w - 1.0, size, dtype=np.float32)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, h - 1)
    x1 = np.minimum(x0 + 1, w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    top = img[y0][:, x0] * (1 - wx) + img[y0][:, x1] * wx
    bottom = img[y1][:, x0] * (1 - wx) + img[y1][:, x1] * wx
    return np.ascontiguousarray(top * (1 - wy) + bottom * wy, dtype=np.float32)


class NsfwjsModel(OnnxEntryModel):
    """Model contract (crossguard.core.model_contract.Model[np.ndarray, dict[Category, float]]);
    `classes` gives the five class probabilities of frames."""

    name = NAME

    def __init__(
        self, repository: ModelRepository | None = None, settings: ModelSettings | None = None
    ) -> None:
        super().__init__(repository, settings)
        self.sexy_weight = 0.5

    @property
    def categories(self) -> Sequence[Category]:
        return [Category.SEXUAL]

    @property
    def thresholds(self) -> Mapping[Category, float]:
        return {}

    def _configure(self, entry: ModelEntry) -> None:
        self.sexy_weight = float(entry.manifest.metrics.get("sexy_weight", 0.5))

    def classes(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities [n, 5] in LABELS order."""
        session = self.session()
        batch = np.stack([preprocess(f) for f in frames])
        return np.asarray(session.run(["probabilities"], {"input": batch})[0], dtype=np.float32)

    def predict(self, batch: Sequence[np.ndarray]) -> list[dict[Category, float]]:
        if not batch:
            return []
        out = []
        for p in self.classes(batch):
            sexual = float(p[3] + p[1] + self.sexy_weight * p[4])
            out.append({Category.SEXUAL: min(1.0, sexual)})
        return out
