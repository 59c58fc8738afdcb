"""Sentence embeddings for semantic agreement: the MiniLM encoder of the model repository
(minilm-l6-encoder: tokenizer.json + model.onnx, mean-pooled and L2-normalised inside the graph),
loaded through the manifest and core's ONNX session factory. The text service's encoder code
stays in crossguard.text (services do not import each other); this needs only its graph's
`embedding` output, so it is the tokenizer's own padding and one onnxruntime call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from crossguard.core.model_repository import MODEL_FILE, ModelRepository
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer

ENCODER = "minilm-l6-encoder"


class SentenceEncoder:
    """texts -> L2-normalised embeddings [n, dim] (fp32 graph: agreement is compared across
    texts of one item, and int8's per-batch activation scaling would let batch-mates move it)."""

    def __init__(
        self,
        repository: ModelRepository,
        settings: ModelSettings,
        name: str = ENCODER,
        max_tokens: int = 256,
    ) -> None:
        from tokenizers import Tokenizer

        entry = repository.get(name)
        self.model = (entry.manifest.name, entry.manifest.version)
        pre = entry.manifest.preprocessing
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(entry.file(pre["tokenizer"])))
        self.tokenizer.enable_truncation(max_length=int(pre.get("max_length", max_tokens)))
        self.tokenizer.enable_padding()
        self.session: ort.InferenceSession = session_from_settings(entry.file(MODEL_FILE), settings)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts))
        ids = np.asarray([e.ids for e in encs], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encs], dtype=np.int64)
        out = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two L2-normalised embeddings, clipped to [0, 1] (MiniLM cosines of unrelated
    texts sit near 0; negatives carry no extra meaning here)."""
    return float(min(1.0, max(0.0, float(np.dot(a, b)))))
