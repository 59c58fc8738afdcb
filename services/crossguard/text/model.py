"""Text safety model: MiniLM-L6 encoder + per-category heads + profanity, all ONNX.

Runtime dependencies: onnxruntime, numpy, tokenizers (no torch/transformers). Entries come from a
model repository built by `crossguard models build`:

    minilm-l6-encoder/2   tokenizer.json + model.onnx (input_ids, attention_mask -> embedding,
                          features = per-layer pooled hidden states)
    profanity/1           model.onnx (text [batch,1] -> offensive [batch])
    text-heads/2          model.onnx (features, profanity -> probabilities [batch,k])
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import ModelEntry, ModelRepository
from crossguard.core.onnx_session import create_session
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

ENCODER = "minilm-l6-encoder"
PROFANITY = "profanity"
HEADS = "text-heads"

# A batch is sorted by token length and run in sub-batches of this size, so padding stays low.
# Measured on 2 busy CPU cores, 128 mixed texts (OpenAI samples + tweets), best of 6 rounds,
# 1 intra-op thread, ms/text: sorted 1: 13.0, 4: 13.3, 8: 14.0, 16: 15.9, 32: 20.2, 64: 36.3;
# unsorted 16: 56.2, unsorted 128 (one padded batch): 72.2. With 2 threads 8 was also the best
# (noisier). On a GPU larger sub-batches pay off: pass sub_batch=.
DEFAULT_SUB_BATCH = 8
# Upstream alt-profanity-check's predict() cut-off.
PROFANITY_THRESHOLD = 0.5
# Characters looked at by the encoder; 256 word pieces never need more (cheap guard on huge input).
MAX_ENCODER_CHARS = 16_384


def _session(entry: ModelEntry, settings: ModelSettings) -> ort.InferenceSession:
    return create_session(
        entry.onnx_path,
        providers=settings.onnx_providers,
        intra_op_threads=settings.onnx_intra_op_threads,
        cuda_device_id=settings.cuda_device_id,
    )


class TextEncoder:
    """Tokenizer + ONNX sentence encoder: texts -> L2-normalised embeddings [n, 384]."""

    def __init__(self, entry: ModelEntry, settings: ModelSettings, sub_batch: int) -> None:
        from tokenizers import Tokenizer

        self.entry = entry
        pre = entry.manifest.preprocessing
        self.max_length = int(pre.get("max_length", 256))
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(entry.file(pre["tokenizer"])))
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.tokenizer.no_padding()
        self.session = _session(entry, settings)
        self.sub_batch = max(1, sub_batch)
        self.dim = int(entry.manifest.outputs[0].shape[-1] or 384)
        outputs = {o.name: o for o in entry.manifest.outputs}
        feats = outputs.get("features")
        self.features_dim = int(feats.shape[-1] or 0) if feats is not None else 0

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encs = self.tokenizer.encode_batch([t[:MAX_ENCODER_CHARS] for t in texts])
        return [e.ids for e in encs]

    def embed(self, texts: Sequence[str], sort: bool = True) -> np.ndarray:
        """L2-normalised sentence embeddings [n, dim]."""
        return self._run(texts, ["embedding"], sort)[0]

    def encode(self, texts: Sequence[str], sort: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(embedding [n, dim], features [n, features_dim]) in one encoder pass."""
        if not self.features_dim:
            raise ModelError(
                f"{self.entry.manifest.name}/{self.entry.manifest.version} has no "
                "`features` output; rebuild with `crossguard models build`"
            )
        emb, feats = self._run(texts, ["embedding", "features"], sort)
        return emb, feats

    def _run(self, texts: Sequence[str], names: list[str], sort: bool) -> list[np.ndarray]:
        dims = {"embedding": self.dim, "features": self.features_dim}
        outs = [np.zeros((len(texts), dims[n]), dtype=np.float32) for n in names]
        if not texts:
            return outs
        ids = self.token_ids(texts)
        order = (
            sorted(range(len(ids)), key=lambda i: len(ids[i])) if sort else list(range(len(ids)))
        )
        for start in range(0, len(order), self.sub_batch):
            chunk = order[start : start + self.sub_batch]
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            got = self.session.run(names, {"input_ids": input_ids, "attention_mask": mask})
            for out, value in zip(outs, got, strict=True):
                out[chunk] = value
        return outs


class ProfanityScorer:
    """alt-profanity-check as ONNX: raw texts -> probability of offensive language [n]."""

    def __init__(self, entry: ModelEntry, settings: ModelSettings) -> None:
        self.entry = entry
        self.session = _session(entry, settings)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0,), dtype=np.float32)
        arr = np.asarray(list(texts), dtype=object).reshape(-1, 1)
        out = self.session.run(["offensive"], {"text": arr})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)


class TextModel:
    """Scores texts for every supported category (heads' categories + profanity).

    Implements the Model contract (crossguard.core.model_contract.Model[str, dict[Category,
    float]]). `predict` and `embed` are blocking and thread-safe (onnxruntime sessions are).
    """

    name = "crossguard-text"

    def __init__(
        self,
        repository: ModelRepository | None = None,
        settings: ModelSettings | None = None,
        *,
        sub_batch: int = DEFAULT_SUB_BATCH,
    ) -> None:
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.sub_batch = sub_batch
        self.version = "unloaded"
        self._lock = threading.Lock()
        self._encoder: TextEncoder | None = None
        self._profanity: ProfanityScorer | None = None
        self._heads: Any = None
        self._head_categories: list[Category] = []
        self._thresholds: dict[Category, float] = {}
        self._infos: list[tuple[str, str]] = []

    # -- Model contract -----------------------------------------------------------------------

    def load(self) -> None:
        with self._lock:
            if self._encoder is not None:
                return
            enc_entry = self.repository.get(ENCODER)
            prof_entry = self.repository.get(PROFANITY)
            heads_entry = self.repository.get(HEADS)
            for entry in (enc_entry, prof_entry, heads_entry):
                entry.verify()
            required = heads_entry.manifest.preprocessing.get("requires", {})
            have = {ENCODER: enc_entry.manifest.version, PROFANITY: prof_entry.manifest.version}
            for dep, ver in required.items():
                if have.get(dep) != str(ver):
                    raise ModelError(
                        f"{HEADS}/{heads_entry.manifest.version} was trained on {dep}/{ver}, "
                        f"but the repository serves {dep}/{have.get(dep)}"
                    )
            categories = [Category(label) for label in heads_entry.manifest.labels]
            raw_thresholds = heads_entry.manifest.metrics.get("thresholds", {})
            thresholds = {c: float(raw_thresholds.get(c.value, 0.5)) for c in categories}
            thresholds[Category.PROFANITY] = PROFANITY_THRESHOLD

            encoder = TextEncoder(enc_entry, self.settings, self.sub_batch)
            profanity = ProfanityScorer(prof_entry, self.settings)
            heads = _session(heads_entry, self.settings)

            self._head_categories = categories
            self._thresholds = thresholds
            self._infos = [
                (e.manifest.name, e.manifest.version) for e in (enc_entry, heads_entry, prof_entry)
            ]
            self.version = "+".join(f"{n}:{v}" for n, v in self._infos)
            self._profanity, self._heads, self._encoder = profanity, heads, encoder

    def ready(self) -> bool:
        return self._encoder is not None

    def predict(self, batch: Sequence[str]) -> list[dict[Category, float]]:
        """Probabilities in [0, 1] for every category in `categories`, one dict per text."""
        encoder, profanity, heads = self._require()
        texts = [t if isinstance(t, str) else str(t) for t in batch]
        if not texts:
            return []
        prof = profanity.score(texts)
        _, feats = encoder.encode(texts)
        probs = heads.run(["probabilities"], {"features": feats, "profanity": prof})[0]
        out: list[dict[Category, float]] = []
        for row in range(len(texts)):
            scores = {c: float(probs[row, k]) for k, c in enumerate(self._head_categories)}
            scores[Category.PROFANITY] = float(prof[row])
            out.append(scores)
        return out

    def close(self) -> None:
        with self._lock:
            self._encoder = None
            self._profanity = None
            self._heads = None
            self.version = "unloaded"

    # -- extras -------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised MiniLM sentence embeddings, [len(texts), 384] float32 (cosine = dot)."""
        encoder, _, _ = self._require()
        return encoder.embed(list(texts))

    @property
    def categories(self) -> list[Category]:
        self._require()
        return [*self._head_categories, Category.PROFANITY]

    @property
    def thresholds(self) -> dict[Category, float]:
        """Per-category decision thresholds (heads: chosen on the training split; profanity 0.5)."""
        self._require()
        return dict(self._thresholds)

    @property
    def model_infos(self) -> list[tuple[str, str]]:
        """(name, version) of every repository entry used, e.g. ("text-heads", "1")."""
        self._require()
        return list(self._infos)

    def _require(self) -> tuple[TextEncoder, ProfanityScorer, Any]:
        encoder, profanity, heads = self._encoder, self._profanity, self._heads
        if encoder is None or profanity is None or heads is None:
            raise NotReady("text model is not loaded; call load() first")
        return encoder, profanity, heads
