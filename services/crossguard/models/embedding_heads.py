"""Logistic heads over a sentence embedding, shared by text-heads-multilingual and framing-head:
committed weights as heads.npz (weight [k, dim], bias [k]) + heads.json (everything else), and
their ONNX graph, embedding [batch, dim] -> Gemm -> Sigmoid -> probabilities [batch, k], written
into a fresh entry directory with its parity against numpy checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import MODEL_FILE, TensorSpec
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


def write_graph(
    name: str, out_dir: Path, heads: dict[str, Any], graph_name: str, progress: ProgressFn
) -> float:
    """Write the graph into `out_dir` and check it against numpy on random embeddings; returns
    the largest absolute difference."""
    require("onnxruntime")
    weight, bias = heads["weight"], heads["bias"]
    (out_dir / MODEL_FILE).write_bytes(graph(weight, bias, graph_name).SerializeToString())
    x = np.random.default_rng(0).normal(size=(16, weight.shape[1])).astype(np.float32)
    expected = 1.0 / (1.0 + np.exp(-(x @ weight.T + bias)))
    return onnx_parity(
        name, out_dir / MODEL_FILE, {INPUT: x}, OUTPUT, expected, "numpy", progress, 1e-5
    )


def tensor_specs(dim: int, k: int) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The manifest's inputs and outputs of the graph."""
    return (
        [TensorSpec(name=INPUT, dtype="float32", shape=["batch", dim])],
        [TensorSpec(name=OUTPUT, dtype="float32", shape=["batch", k])],
    )
