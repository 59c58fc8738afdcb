"""CLIP backend: zero-shot category scores and image-text similarity from an image tower and a
text tower in ONNX (an entry made by `crossguard models export` from a local CLIP checkpoint;
no CLIP weights install offline).

Zero-shot: each category's prompts (clip_prompts.yaml, or CROSSGUARD_VISION_CLIP_PROMPTS) are
embedded once at load and averaged; an image's score for a category is the softmax, at the
model's logit scale, of its similarity to that category against its similarity to the benign
prompts. Image preprocessing as CLIP's image processor: resize the shortest edge (bicubic),
centre crop, rescale to [0, 1], normalise by the manifest's mean and std, NCHW.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from PIL import Image

from crossguard.core.clip_text import ClipTextEncoder, clip_entry, clip_session
from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    import onnxruntime as ort

DEFAULT_PROMPTS = Path(__file__).with_name("clip_prompts.yaml")


def load_prompts(path: Path | None = None) -> tuple[list[str], dict[Category, list[str]]]:
    """(benign prompts, prompts per category) from a prompts YAML file."""
    source = path or DEFAULT_PROMPTS
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
        benign = [str(p) for p in raw["benign"]]
        categories = {Category.parse(k): [str(p) for p in v] for k, v in raw["categories"].items()}
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ModelError(f"CLIP prompts {source}: {exc}") from exc
    if not benign or not categories or any(not v for v in categories.values()):
        raise ModelError(f"CLIP prompts {source}: every list needs at least one prompt")
    return benign, categories


def preprocess(rgb: np.ndarray, pre: Mapping[str, Any]) -> np.ndarray:
    """One RGB frame -> [3, H, W] float32 as the manifest's preprocessing says."""
    img = Image.fromarray(rgb, "RGB")
    shortest = int(pre["resize_shortest_edge"])
    w, h = img.size
    scale = shortest / min(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    crop_h, crop_w = (int(v) for v in pre["crop"])
    left = max(0, (img.width - crop_w) // 2)
    top = max(0, (img.height - crop_h) // 2)
    img = img.crop((left, top, left + crop_w, top + crop_h))
    arr = np.asarray(img, dtype=np.float32) * np.float32(pre["rescale"])
    mean = np.asarray(pre["mean"], dtype=np.float32)
    std = np.asarray(pre["std"], dtype=np.float32)
    return np.ascontiguousarray(((arr - mean) / std).transpose(2, 0, 1), dtype=np.float32)


class ClipModel:
    """Model contract (crossguard.core.model_contract.Model[np.ndarray, dict[Category, float]]):
    RGB frames -> zero-shot probability per prompted category; plus `similarity`."""

    def __init__(
        self,
        name: str,
        repository: ModelRepository | None = None,
        settings: ModelSettings | None = None,
        *,
        prompts: Path | None = None,
    ) -> None:
        self.name = name
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.prompts_path = prompts
        self.version = "unloaded"
        self._lock = threading.Lock()
        self._image: ort.InferenceSession | None = None
        self._text: ClipTextEncoder | None = None
        self._pre: dict[str, Any] = {}
        self._categories: list[Category] = []
        self._prototypes = np.zeros((0, 0), dtype=np.float32)

    @property
    def categories(self) -> Sequence[Category]:
        return list(self._categories)

    @property
    def thresholds(self) -> Mapping[Category, float]:
        return {}

    @property
    def model_infos(self) -> Sequence[tuple[str, str]]:
        return [(self.name, self.version)]

    def load(self) -> None:
        with self._lock:
            if self._image is not None:
                return
            entry = clip_entry(self.repository.get(self.name))
            self._text = ClipTextEncoder(entry, self.settings)
            self._image = clip_session(entry, "model.onnx", self.settings)
            self._pre = dict(entry.manifest.preprocessing)
            benign, per_category = load_prompts(self.prompts_path)
            rows = [self._mean(benign)]
            self._categories = list(per_category)
            rows += [self._mean(per_category[c]) for c in self._categories]
            self._prototypes = np.stack(rows)
            self.version = entry.manifest.version

    def _mean(self, prompts: Sequence[str]) -> np.ndarray:
        emb = self.embed_texts(prompts).mean(axis=0)
        return np.asarray(emb / np.linalg.norm(emb), dtype=np.float32)

    def ready(self) -> bool:
        return self._image is not None

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings [n, dim]."""
        if self._text is None:
            raise NotReady("CLIP is not loaded; call load() first")
        return self._text.embed(texts)

    def embed_images(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """L2-normalised image embeddings [n, dim]."""
        if self._image is None:
            raise NotReady("CLIP is not loaded; call load() first")
        batch = np.stack([preprocess(f, self._pre) for f in frames])
        out = self._image.run(["image_embeds"], {"pixel_values": batch})[0]
        return np.asarray(out, dtype=np.float32)

    def predict(self, batch: Sequence[np.ndarray]) -> list[dict[Category, float]]:
        if not batch:
            return []
        return self.scores_of(self.embed_images(batch))

    def embed_and_predict(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[dict[Category, float]]]:
        """Image embeddings [n, dim] and zero-shot scores of the frames, in one image-tower
        pass (the vision service returns the embeddings for the consistency service)."""
        embeds = self.embed_images(batch)
        return embeds, self.scores_of(embeds)

    def scores_of(self, embeds: np.ndarray) -> list[dict[Category, float]]:
        """Zero-shot scores of image embeddings."""
        sims = embeds @ self._prototypes.T  # [n, 1 + categories]
        scale = float(self._pre["logit_scale"])
        out: list[dict[Category, float]] = []
        for row in sims:
            benign = row[0]
            scores = {}
            for k, cat in enumerate(self._categories, start=1):
                # Two-way softmax: this category against the benign prompts.
                scores[cat] = float(1.0 / (1.0 + np.exp(-scale * (row[k] - benign))))
            out.append(scores)
        return out

    def similarity(self, frames: Sequence[np.ndarray], texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity [frames, texts] of images and texts (for consistency checks)."""
        sims: np.ndarray = self.embed_images(frames) @ self.embed_texts(texts).T
        return sims

    def close(self) -> None:
        with self._lock:
            if self._text is not None:
                self._text.close()
            self._image = self._text = None
            self.version = "unloaded"
