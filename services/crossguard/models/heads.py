"""Per-category linear heads over [encoder layer features, profanity probability].

One set of heads per English encoder (HeadsSpec): text-heads over minilm-l6-encoder (weights in
services/crossguard/text/heads/, ~90 kB) and text-heads-mpnet over mpnet-base-encoder
(services/crossguard/text/heads_mpnet/, ~320 kB); heads.npz + heads.json, committed and
reproduced by `python -m crossguard.models.train_heads [--encoder mpnet]`. `build_heads` turns
them into a tiny ONNX graph: Concat(features, profanity) -> Gemm -> Sigmoid -> `probabilities`
[batch, k]. `features` is the encoder's second output (EncoderSpec.features_dim). The heads are
trained on the fp32 encoder's features and serve every variant of that encoder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import (
    MODEL_FILE,
    Manifest,
    ModelEntry,
    ModelRepository,
    Provenance,
    TensorSpec,
)
from crossguard.core.taxonomy import Category
from crossguard.models import encoder as _encoder
from crossguard.models import profanity as _profanity
from crossguard.models._common import OPSET, ProgressFn, onnx_parity, require, stderr_progress

WEIGHTS_FILE = "heads.npz"
META_FILE = "heads.json"
OUTPUT = "probabilities"


@dataclass(frozen=True)
class HeadsSpec:
    """The heads entry trained over one encoder's features."""

    name: str
    version: str
    encoder: _encoder.EncoderSpec
    # Folder of the committed weights under services/crossguard/text/.
    folder: str

    def default_dir(self) -> Path:
        """services/crossguard/text/<folder> (shipped as package data)."""
        import crossguard.text

        return Path(crossguard.text.__file__).resolve().parent / self.folder


# 3: same weights as 2, for minilm-l6-encoder/3 (which adds the int8 variant).
# 4: trained on normalised text with the contrastive development cases (train split).
# 5: + short benign and hateful mentions of 40 more identity groups (development cases 447+).
MINILM_HEADS = HeadsSpec("text-heads", "5", _encoder.MINILM, "heads")
# 1: text-heads/5's recipe and data over all-mpnet-base-v2's features.
MPNET_HEADS = HeadsSpec("text-heads-mpnet", "1", _encoder.MPNET, "heads_mpnet")
# CROSSGUARD_TEXT_ENGLISH_ENCODER value -> heads.
HEADS: dict[str, HeadsSpec] = {"minilm": MINILM_HEADS, "mpnet": MPNET_HEADS}

NAME = MINILM_HEADS.name
VERSION = MINILM_HEADS.version
FEATURES_DIM = _encoder.FEATURES_DIM


def default_heads_dir() -> Path:
    """services/crossguard/text/heads (the default encoder's heads)."""
    return MINILM_HEADS.default_dir()


@dataclass
class HeadWeights:
    """k logistic heads over d = features_dim encoder features + 1 profanity feature."""

    categories: list[Category]
    weight: np.ndarray  # [k, d] float32
    bias: np.ndarray  # [k] float32
    thresholds: dict[Category, float]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.categories)
        if self.weight.ndim != 2 or self.weight.shape[0] != k or self.bias.shape != (k,):
            raise ModelError(
                f"head weights have shape {self.weight.shape}/{self.bias.shape}, "
                f"expected ({k}, features + 1)/({k},)"
            )

    @property
    def features_dim(self) -> int:
        """Width of the encoder features the heads read (the last column is profanity)."""
        return int(self.weight.shape[1]) - 1

    def predict(self, features: np.ndarray, profanity: np.ndarray) -> np.ndarray:
        """Reference implementation of the ONNX graph (numpy)."""
        x = np.concatenate([features, profanity.reshape(-1, 1)], axis=1).astype(np.float32)
        z = x @ self.weight.T + self.bias
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float32)


def save_heads(heads: HeadWeights, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    # Fixed member order and no compression: byte-identical files for identical weights.
    with (directory / WEIGHTS_FILE).open("wb") as fh:
        np.savez(
            fh,
            weight=heads.weight.astype(np.float32),
            bias=heads.bias.astype(np.float32),
        )
    meta = {
        **heads.meta,
        "categories": [c.value for c in heads.categories],
        "thresholds": {c.value: float(heads.thresholds[c]) for c in heads.categories},
        "features": [f"features[{heads.features_dim}]", "profanity[1]"],
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_heads(directory: Path | None = None) -> HeadWeights:
    directory = directory or default_heads_dir()
    wpath, mpath = directory / WEIGHTS_FILE, directory / META_FILE
    if not wpath.is_file() or not mpath.is_file():
        raise ModelError(
            f"head weights not found in {directory}; run `python -m crossguard.models.train_heads`"
        )
    meta = json.loads(mpath.read_text())
    with np.load(wpath) as z:
        weight = np.asarray(z["weight"], dtype=np.float32)
        bias = np.asarray(z["bias"], dtype=np.float32)
    categories = [Category(c) for c in meta["categories"]]
    thresholds = {Category(c): float(t) for c, t in meta["thresholds"].items()}
    rest = {k: v for k, v in meta.items() if k not in ("categories", "thresholds", "features")}
    return HeadWeights(categories, weight, bias, thresholds, rest)


def heads_graph(heads: HeadWeights) -> Any:
    """ONNX ModelProto: features [batch,F], profanity [batch] -> probabilities [batch,k]."""
    onnx = require("onnx")
    h, tp = onnx.helper, onnx.TensorProto
    k = len(heads.categories)
    nodes = [
        h.make_node("Unsqueeze", ["profanity", "axis1"], ["profanity_col"]),
        h.make_node("Concat", ["features", "profanity_col"], ["inputs"], axis=1),
        h.make_node("Gemm", ["inputs", "W", "b"], ["logits"], transB=1),
        h.make_node("Sigmoid", ["logits"], [OUTPUT]),
    ]
    inits = [
        h.make_tensor("axis1", tp.INT64, [1], [1]),
        onnx.numpy_helper.from_array(heads.weight.astype(np.float32), "W"),
        onnx.numpy_helper.from_array(heads.bias.astype(np.float32), "b"),
    ]
    graph = h.make_graph(
        nodes,
        "text_heads",
        [
            h.make_tensor_value_info("features", tp.FLOAT, ["batch", heads.features_dim]),
            h.make_tensor_value_info("profanity", tp.FLOAT, ["batch"]),
        ],
        [h.make_tensor_value_info(OUTPUT, tp.FLOAT, ["batch", k])],
        inits,
    )
    model = h.make_model(
        graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name="crossguard"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_heads(
    repo: ModelRepository,
    *,
    progress: ProgressFn = stderr_progress,
    heads_dir: Path | None = None,
    spec: HeadsSpec = MINILM_HEADS,
) -> ModelEntry:
    """Write models/<spec.name>/<version> from the committed weights (no training here)."""
    require("onnxruntime")  # before the entry is cleared: a clear error, not a half-written entry
    heads = load_heads(heads_dir or spec.default_dir())
    enc = spec.encoder
    if heads.features_dim != enc.features_dim:
        raise ModelError(
            f"{spec.name}: the weights read {heads.features_dim} features, "
            f"{enc.name}/{enc.version} gives {enc.features_dim}"
        )
    name, dim = spec.name, enc.features_dim
    out_dir = repo.fresh_entry_dir(name, spec.version)
    t0 = time.perf_counter()
    progress(f"{name}: building Gemm+Sigmoid graph for {len(heads.categories)} categories")
    (out_dir / MODEL_FILE).write_bytes(heads_graph(heads).SerializeToString())

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(16, dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    prof = rng.uniform(size=16).astype(np.float32)
    diff = onnx_parity(
        name,
        out_dir / MODEL_FILE,
        {"features": emb, "profanity": prof},
        OUTPUT,
        heads.predict(emb, prof),
        "numpy heads",
        progress,
        limit=1e-5,
    )

    labels = [c.value for c in heads.categories]
    variants = " and ".join(enc.variants)
    manifest = Manifest(
        name=name,
        version=spec.version,
        task="multi-label-classification",
        inputs=[
            TensorSpec(name="features", dtype="float32", shape=["batch", dim]),
            TensorSpec(name="profanity", dtype="float32", shape=["batch"]),
        ],
        outputs=[TensorSpec(name=OUTPUT, dtype="float32", shape=["batch", len(labels)])],
        labels=labels,
        taxonomy={label: label for label in labels},
        preprocessing={
            "features": f"output `features` of {enc.name}/{enc.version} (per-layer "
            "mean + last-layer max pooling, each L2-normalised); trained on the fp32 variant, "
            f"used with {variants}",
            "profanity": f"output `offensive` of {_profanity.NAME}/{_profanity.VERSION} on the "
            "raw text",
            "requires": {enc.name: enc.version, _profanity.NAME: _profanity.VERSION},
            "activation": "sigmoid per category (independent, multi-label)",
        },
        provenance=Provenance(
            source_package=f"crossguard (services/crossguard/text/{spec.folder})",
            source_version=str(heads.meta.get("weights_sha256", ""))[:16],
            licence="Apache-2.0 (crossguard); trained on OpenAI moderation samples (MIT) and "
            "Davidson hate-speech data (MIT)",
            description=str(heads.meta.get("recipe", "logistic heads")),
            built_by="python -m crossguard.models.train_heads (weights); "
            "crossguard models build (graph)",
        ),
        metrics={
            "thresholds": {c.value: heads.thresholds[c] for c in heads.categories},
            "threshold_rule": heads.meta.get("threshold_rule", ""),
            "train_cv": heads.meta.get("train_cv", {}),
            "graph_vs_numpy_max_abs_diff": diff,
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(name, spec.version)
