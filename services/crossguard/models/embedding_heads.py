"""Logistic heads over a sentence embedding, shared by text-heads-multilingual and framing-head:
committed weights as heads.npz (weight [k, dim], bias [k]) + heads.json (everything else), and
their ONNX graph, embedding [batch, dim] -> Gemm -> Sigmoid -> probabilities [batch, k], written
into a fresh entry directory with its parity against numpy checked, and the entry's manifest
(write_entry)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
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
from crossguard.models._common import OPSET, ProgressFn, onnx_parity, require

WEIGHTS_FILE = "heads.npz"
META_FILE = "heads.json"
INPUT = "embedding"
OUTPUT = "probabilities"


def save(heads: dict[str, Any], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / WEIGHTS_FILE).open("wb") as fh:
        np.savez(fh, weight=heads["weight"], bias=heads["bias"])
    meta = {k: v for k, v in heads.items() if k not in ("weight", "bias")}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load(directory: Path, what: str, trainer: str) -> dict[str, Any]:
    """The committed heads in `directory`; a ModelError naming `trainer` when missing."""
    if not (directory / WEIGHTS_FILE).is_file():
        raise ModelError(f"{what} weights not found in {directory}; run `python -m {trainer}`")
    meta: dict[str, Any] = json.loads((directory / META_FILE).read_text())
    with np.load(directory / WEIGHTS_FILE) as z:
        meta["weight"] = np.asarray(z["weight"], dtype=np.float32)
        meta["bias"] = np.asarray(z["bias"], dtype=np.float32)
    return meta


def graph(weight: np.ndarray, bias: np.ndarray, name: str) -> Any:
    """ONNX ModelProto: embedding [batch, dim] -> probabilities [batch, k]."""
    onnx = require("onnx")
    h, tp = onnx.helper, onnx.TensorProto
    nodes = [
        h.make_node("Gemm", [INPUT, "W", "b"], ["logits"], transB=1),
        h.make_node("Sigmoid", ["logits"], [OUTPUT]),
    ]
    inits = [onnx.numpy_helper.from_array(weight, "W"), onnx.numpy_helper.from_array(bias, "b")]
    g = h.make_graph(
        nodes,
        name,
        [h.make_tensor_value_info(INPUT, tp.FLOAT, ["batch", weight.shape[1]])],
        [h.make_tensor_value_info(OUTPUT, tp.FLOAT, ["batch", weight.shape[0]])],
        inits,
    )
    model = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)], producer_name="crossguard")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_entry(
    repo: ModelRepository,
    name: str,
    version: str,
    heads: dict[str, Any],
    *,
    labels: list[str],
    taxonomy: dict[str, str],
    preprocessing: dict[str, Any],
    provenance: Provenance,
    metrics: Mapping[str, Any],
    progress: ProgressFn,
) -> ModelEntry:
    """models/<name>/<version> from committed heads: the graph (named after the entry), checked
    against numpy on random embeddings, and its manifest; `metrics` gain the check's largest
    absolute difference and the build time."""
    require("onnxruntime")  # before the entry is cleared: a clear error, not a half-written entry
    weight, bias = heads["weight"], heads["bias"]
    out_dir = repo.fresh_entry_dir(name, version)
    t0 = time.perf_counter()
    graph_name = name.replace("-", "_")
    (out_dir / MODEL_FILE).write_bytes(graph(weight, bias, graph_name).SerializeToString())
    x = np.random.default_rng(0).normal(size=(16, weight.shape[1])).astype(np.float32)
    expected = 1.0 / (1.0 + np.exp(-(x @ weight.T + bias)))
    diff = onnx_parity(
        name, out_dir / MODEL_FILE, {INPUT: x}, OUTPUT, expected, "numpy", progress, 1e-5
    )
    manifest = Manifest(
        name=name,
        version=version,
        task="multi-label-classification",
        inputs=[TensorSpec(name=INPUT, dtype="float32", shape=["batch", weight.shape[1]])],
        outputs=[TensorSpec(name=OUTPUT, dtype="float32", shape=["batch", len(labels)])],
        labels=labels,
        taxonomy=taxonomy,
        preprocessing=preprocessing,
        provenance=provenance,
        metrics={
            **metrics,
            "graph_vs_numpy_max_abs_diff": diff,
            "build_seconds": round(time.perf_counter() - t0, 3),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(name, version)
