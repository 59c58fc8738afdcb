"""Per-category logistic heads over the multilingual encoder (use-m3-encoder), trained on English.

    python -m crossguard.models.multilingual_train  # -> crossguard/text/heads_multilingual

The recipe (crossguard.models.multilingual_train) is crossguard.models.train_heads' (its
training sets, logistic fit, 5-fold out-of-fold max-F1 thresholds are called from there):
OpenAI train rows per annotated category, the Davidson subsample for hate/harassment, the
train split of the English development cases. Only the features differ: the 512-d USE
multilingual embedding of the sanitised text, without the profanity probability
(alt-profanity-check reads English words only; a head leaning on it would miss insults in other
languages) and without crossguard.text.normalise (its leetspeak/homoglyph rules are built on an
English vocabulary and would rewrite Cyrillic or accented words). No non-English text is
trained on: the heads reach other languages through the encoder's shared embedding space,
which the non-English development cases measure (crossguard.models.evaluate, per language).

`build_multilingual_heads` writes text-heads-multilingual/<VERSION>: Gemm + Sigmoid over
`embedding` -> `probabilities` [batch, k], parity-checked against numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossguard.core.model_repository import (
    ModelEntry,
    ModelRepository,
    Provenance,
)
from crossguard.core.taxonomy import Category
from crossguard.models import embedding_heads as _eh
from crossguard.models import multilingual as _ml
from crossguard.models._common import (
    ProgressFn,
    stderr_progress,
)

NAME = "text-heads-multilingual"
VERSION = "1"
DIM = _ml.DIM


def default_dir() -> Path:
    """services/crossguard/text/heads_multilingual (shipped as package data)."""
    import crossguard.text

    return Path(crossguard.text.__file__).resolve().parent / "heads_multilingual"


save = _eh.save


def load(directory: Path | None = None) -> dict[str, Any]:
    return _eh.load(
        directory or default_dir(), "multilingual head", "crossguard.models.multilingual_train"
    )


def build_multilingual_heads(
    repo: ModelRepository, *, progress: ProgressFn = stderr_progress
) -> ModelEntry:
    """Write text-heads-multilingual/<VERSION> from the committed weights (no training here)."""
    heads = load()
    labels = list(heads["categories"])
    return _eh.write_entry(
        repo,
        NAME,
        VERSION,
        heads,
        labels=labels,
        taxonomy={label: label for label in labels},
        preprocessing={
            "embedding": f"output `embedding` of {_ml.NAME}/{_ml.VERSION} on the sanitised "
            "text (crossguard.text.textprep.sanitize; no crossguard.text.normalise)",
            "requires": {_ml.NAME: _ml.VERSION},
            "activation": "sigmoid per category (independent, multi-label)",
        },
        provenance=Provenance(
            source_package="crossguard (services/crossguard/text/heads_multilingual)",
            source_version=str(heads.get("weights_sha256", ""))[:16],
            licence="Apache-2.0 (crossguard); trained on OpenAI moderation samples (MIT) and "
            "Davidson hate-speech data (MIT)",
            description=str(heads.get("recipe", "")),
            built_by="python -m crossguard.models.multilingual_train (weights); "
            "crossguard models build (graph)",
        ),
        metrics={
            "thresholds": heads["thresholds"],
            "threshold_rule": heads.get("threshold_rule", ""),
            "train_cv_auprc": heads.get("train_cv_auprc", {}),
        },
        progress=progress,
    )


def thresholds_of(entry: ModelEntry) -> dict[Category, float]:
    raw = entry.manifest.metrics.get("thresholds", {})
    return {Category(k): float(v) for k, v in raw.items()}
