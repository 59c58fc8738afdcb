"""The text tower of a CLIP model repository entry (made by `crossguard models export` from a
CLIP checkpoint): its tokenizer and ONNX text graph, embedding texts into the space its image
tower embeds images in. Shared by the vision service (zero-shot prompts) and the consistency
service (caption vs image embeddings)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import ModelEntry
from crossguard.core.onnx_session import session_from_settings
from crossguard.core.settings import ModelSettings

if TYPE_CHECKING:
    import onnxruntime as ort
    from tokenizers import Tokenizer


def clip_entry(entry: ModelEntry) -> ModelEntry:
    """`entry`, verified, when it is a CLIP entry (ModelError otherwise)."""
    if entry.manifest.task != "clip":
        raise ModelError(f"{entry.manifest.name} is a {entry.manifest.task!r} entry, not CLIP")
    entry.verify()
    return entry


def clip_session(entry: ModelEntry, file: str, settings: ModelSettings) -> ort.InferenceSession:
    """An onnxruntime session on one of the entry's graphs, as the settings configure."""
    return session_from_settings(entry.file(file), settings)


class ClipTextEncoder:
    """Texts -> L2-normalised CLIP text embeddings [n, dim] (blocking; thread-safe as
    onnxruntime sessions are). The tokenizer truncates at the manifest's max_length."""

    def __init__(self, entry: ModelEntry, settings: ModelSettings | None = None) -> None:
        from tokenizers import Tokenizer

        entry = clip_entry(entry)
        pre = entry.manifest.preprocessing
        tokenizer: Tokenizer = Tokenizer.from_file(str(entry.file(pre["tokenizer"])))
        tokenizer.enable_truncation(max_length=int(pre["max_length"]))
        self._tokenizer: Tokenizer | None = tokenizer
        self._session: ort.InferenceSession | None = clip_session(
            entry, pre["text_graph"], settings or ModelSettings()
        )
        self.model = (entry.manifest.name, entry.manifest.version)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._session is None or self._tokenizer is None:
            raise NotReady("the CLIP text tower is closed")
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        encs = self._tokenizer.encode_batch(list(texts))
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        out = self._session.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0]
        return np.asarray(out, dtype=np.float32)

    def close(self) -> None:
        self._session = None
        self._tokenizer = None
