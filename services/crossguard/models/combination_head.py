"""A candidate combination head (`crossguard eval fusion --combination-head`), measured only,
not served: logistic regression over the consistency service's sentence embeddings (the
MiniLM vectors it already computes for text agreement) of two texts, trained on pairs built from
the text model's TRAINING split (crossguard.models.data.split_of; the development set uses
validation texts only) with the development set's recipe: a harmful text cut at its middle word
(label 1); controls: a benign text cut the same way and two unrelated benign texts (label 0).

Features are symmetric in the two texts (sum, element-wise product, absolute difference), since
a pair's slots come in any order. An item with three texts takes its highest pair.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.models.data import default_data_dir, load_davidson, load_openai, select
from crossguard.models.fusion_data import _halves

# Training pairs per label: enough to fit ~1,150 weights with L2, few enough to embed on two
# busy cores in minutes.
PAIRS_PER_LABEL = 600


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: int


def training_pairs(
    data_dir: Path | None = None, per_label: int = PAIRS_PER_LABEL, seed: int = 14
) -> list[Pair]:
    """Split-into-halves pairs of training-split texts (harmful: OpenAI any category, Davidson
    hate; benign: OpenAI all-negative, Davidson "neither"), half the benign pairs being two
    unrelated benign texts."""
    data = data_dir or default_data_dir()
    openai = select(load_openai(data), "train")
    davidson = select(load_davidson(data), "train")
    key = lambda t: hashlib.sha256(t.encode()).hexdigest()  # noqa: E731
    harmful = sorted(
        [e.text for e in openai if e.any_positive]
        + [e.text for e in davidson if e.source == "davidson:0"],
        key=key,
    )
    benign = sorted(
        [e.text for e in openai if not e.any_positive and e.labels]
        + [e.text for e in davidson if e.source == "davidson:2"],
        key=key,
    )
    rng = random.Random(seed)
    pairs = [Pair(*h, 1) for h in (_halves(t) for t in harmful) if h is not None][:per_label]
    benign_split = [Pair(*h, 0) for h in (_halves(t) for t in benign) if h is not None]
    pairs += benign_split[: per_label // 2]
    short = [t for t in benign if len(t) <= 200]
    rng.shuffle(short)
    unrelated = per_label - per_label // 2
    pairs += [
        Pair(short[2 * i], short[2 * i + 1], 0) for i in range(min(unrelated, len(short) // 2))
    ]
    return pairs


def pair_features(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    return np.concatenate([ea + eb, ea * eb, np.abs(ea - eb)])


class Embeddings:
    """Sentence embeddings by text sha256, cached in a JSON file."""

    def __init__(
        self,
        repository: ModelRepository,
        settings: ModelSettings,
        path: Path,
        known: dict[str, list[float]] | None = None,
    ) -> None:
        """`known`: rows already embedded by the same encoder (the score cache's), used but
        not written to `path`."""
        self.repository, self.settings, self.path = repository, settings, path
        self.rows: dict[str, list[float]] = json.loads(path.read_text()) if path.is_file() else {}
        self.known = known or {}

    def ensure(self, texts: Sequence[str], progress: Callable[[str], None] | None = None) -> None:
        from crossguard.consistency.embedding import SentenceEncoder

        todo = sorted({t for t in texts if _sha(t) not in self.rows and _sha(t) not in self.known})
        if not todo:
            return
        encoder = SentenceEncoder(self.repository, self.settings)
        for start in range(0, len(todo), 32):
            chunk = todo[start : start + 32]
            for text, row in zip(chunk, encoder.embed(chunk), strict=True):
                self.rows[_sha(text)] = [float(x) for x in row]
            if progress and (start // 32) % 10 == 0:
                progress(f"combination head: embedded {start + len(chunk)}/{len(todo)}")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.rows))

    def __getitem__(self, text: str) -> np.ndarray:
        key = _sha(text)
        return np.asarray(self.known.get(key) or self.rows[key], dtype=np.float64)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class CombinationHead:
    coef: np.ndarray
    intercept: float
    c: float = 1.0  # the regularisation chosen

    def score(self, texts: Sequence[np.ndarray]) -> float:
        """The highest pair's probability over an item's texts' embeddings."""
        best = 0.0
        for i in range(len(texts)):
            for j in range(i + 1, len(texts)):
                z = float(pair_features(texts[i], texts[j]) @ self.coef + self.intercept)
                best = max(best, 1.0 / (1.0 + np.exp(-z)))
        return best


def fit_head(pairs: Sequence[Pair], emb: Embeddings) -> CombinationHead:
    """L2 logistic regression, its strength chosen by 5-fold cross-validated log loss on the
    training pairs themselves."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    x = np.stack([pair_features(emb[p.a], emb[p.b]) for p in pairs])
    y = np.asarray([p.label for p in pairs])

    def model(c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=2000)

    losses = {
        c: float(np.mean(cross_val_score(model(c), x, y, cv=5, scoring="neg_log_loss")))
        for c in (0.01, 0.1, 1.0, 10.0)
    }
    best = max(losses, key=lambda c: losses[c])
    lr = model(best).fit(x, y)
    return CombinationHead(lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), best)
