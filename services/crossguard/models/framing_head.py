"""The framing head: two logistic probes over the consistency service's sentence embedding
(minilm-l6-encoder `embedding`, 384-d) that together detect a text framing the people another
text names as vermin, filth, disease or a target ("benign parts, harmful combination",
docs/fusion.md):

- `names_people`: the text names or shows people (a group, a crowd, a scene with people);
- `frames_as_harm`: read over people, the text dehumanises or threatens them.

The consistency service scores an item's texts with both and takes, over ordered pairs of two
different texts, names_people(a) x frames_as_harm(b): high only when one text shows people and
another frames them (crossguard.consistency.framing). Factored this way, the two probes learn
two simple concepts each from a few hundred texts; a single head over pair features (the
measured candidate of crossguard.models.combination_head) had to learn their interaction and
did not (docs/fusion.md, session 8).

    python -m crossguard.models.framing_head   # -> services/crossguard/consistency/framing_head

Training data: the hand-written lists of crossguard.models.combination_cases, plus benign
texts of the text model's TRAINING split (OpenAI all-negative rows, Davidson "neither") as more
negatives of `frames_as_harm` (so ordinary posts stay low). The multimodal development set uses
validation-split texts only, so none of its texts is trained on. L2 logistic regression with
balanced class weights, C chosen on the development set's fit part (docs/fusion.md).

`build_framing_head` writes framing-head/<VERSION> from the committed weights: Gemm + Sigmoid
over `embedding` -> `probabilities` [batch, 2], parity-checked against numpy.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.model_repository import (
    ModelEntry,
    ModelRepository,
    Provenance,
)
from crossguard.models import combination_cases as cases
from crossguard.models import embedding_heads as _eh
from crossguard.models import encoder as _encoder
from crossguard.models._common import ProgressFn, stderr_progress

NAME = "framing-head"
VERSION = "1"
LABELS = ("names_people", "frames_as_harm")
DIM = _encoder.DIM  # the `embedding` output the probes read
# Regularisation: the value that caught the most fit-part combination items at the fewest benign
# combinations (docs/fusion.md, "Framing head").
C = 10.0
BENIGN_TEXTS = 1500


def default_dir() -> Path:
    """services/crossguard/consistency/framing_head (shipped as package data)."""
    import crossguard.consistency

    return Path(crossguard.consistency.__file__).resolve().parent / "framing_head"


def benign_texts(data_dir: Path | None = None, n: int = BENIGN_TEXTS) -> list[str]:
    """Benign texts of the text model's training split, any length (code, long posts and
    texts about animals are where the probe fired wrongly when only short ones were its
    negatives), in a fixed (sha256) order."""
    from crossguard.models.data import default_data_dir, load_davidson, load_openai, select

    data = data_dir or default_data_dir()
    openai = select(load_openai(data), "train")
    davidson = select(load_davidson(data), "train")
    texts = [e.text for e in openai if not e.any_positive and e.labels]
    texts += [e.text for e in davidson if e.source == "davidson:2"]
    return sorted(texts, key=lambda t: hashlib.sha256(t.encode()).hexdigest())[:n]


def training_sets(benign: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """(positives, negatives) of each probe."""
    return {
        "names_people": (
            list(cases.PEOPLE),
            list(cases.THINGS + cases.SCENES + cases.FRAMES + cases.KIND_OR_NEUTRAL),
        ),
        "frames_as_harm": (
            list(cases.FRAMES),
            list(cases.THINGS + cases.SCENES + cases.KIND_OR_NEUTRAL + cases.PEOPLE) + benign,
        ),
    }


def fit(embed: Any, benign: list[str], c: float = C) -> dict[str, Any]:
    """Weights of both probes; `embed(texts) -> [n, DIM]` (the consistency service's encoder)."""
    from sklearn.linear_model import LogisticRegression

    weight, bias, counts = [], [], {}
    for label, (pos, neg) in training_sets(benign).items():
        x = np.concatenate([embed(pos), embed(neg)]).astype(np.float64)
        y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
        lr = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)
        weight.append(lr.coef_[0])
        bias.append(lr.intercept_[0])
        counts[label] = {"positive": len(pos), "negative": len(neg)}
    return {
        "weight": np.asarray(weight, dtype=np.float32),
        "bias": np.asarray(bias, dtype=np.float32),
        "labels": list(LABELS),
        "c": c,
        "counts": counts,
        "recipe": "L2 logistic regression per probe, balanced class weights, over the "
        f"minilm-l6-encoder `embedding`; data: crossguard.models.combination_cases + "
        f"{len(benign)} benign training-split texts (frames_as_harm negatives)",
    }


def load(directory: Path | None = None) -> dict[str, Any]:
    return _eh.load(directory or default_dir(), "framing head", "crossguard.models.framing_head")


def build_framing_head(
    repo: ModelRepository, *, progress: ProgressFn = stderr_progress
) -> ModelEntry:
    """Write framing-head/<VERSION> from the committed weights (no training here)."""
    heads = load()
    return _eh.write_entry(
        repo,
        NAME,
        VERSION,
        heads,
        labels=list(heads["labels"]),
        taxonomy={},
        preprocessing={
            "embedding": f"output `embedding` of {_encoder.NAME}/{_encoder.VERSION} (fp32 "
            "model.onnx, as crossguard.consistency.embedding computes it)",
            "requires": {_encoder.NAME: _encoder.VERSION},
            "activation": "sigmoid per probe; an item's framing score is the highest "
            "names_people(a) x frames_as_harm(b) over ordered pairs of two different texts",
        },
        provenance=Provenance(
            source_package="crossguard (services/crossguard/consistency/framing_head)",
            source_version=hashlib.sha256(
                heads["weight"].tobytes() + heads["bias"].tobytes()
            ).hexdigest()[:16],
            licence="Apache-2.0 (crossguard); hand-written texts (crossguard."
            "models.combination_cases) and OpenAI moderation samples (MIT) and Davidson "
            "hate-speech data (MIT) as negatives",
            description=str(heads.get("recipe", "")),
            built_by="python -m crossguard.models.framing_head (weights); "
            "crossguard models build (graph)",
        ),
        metrics={"c": heads.get("c"), "counts": heads.get("counts", {})},
        progress=progress,
    )


def main(argv: list[str] | None = None) -> int:
    """Train both probes with the repository's encoder and write the committed weights."""
    import argparse

    from crossguard.consistency.embedding import SentenceEncoder
    from crossguard.core.settings import ModelSettings

    p = argparse.ArgumentParser(prog="python -m crossguard.models.framing_head")
    p.add_argument("--models", type=Path, default=Path("models"), help="model repository")
    p.add_argument("--out", type=Path, default=None, help="default: the committed directory")
    p.add_argument("--c", type=float, default=C)
    args = p.parse_args(argv)
    repo = ModelRepository(args.models)
    encoder = SentenceEncoder(repo, ModelSettings(model_repository=repo.root))

    def embed(texts: list[str]) -> np.ndarray:
        return np.concatenate([encoder.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])

    benign = benign_texts()
    heads = fit(embed, benign, args.c)
    out = args.out or default_dir()
    _eh.save(heads, out)
    print(f"wrote {out} ({heads['counts']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
