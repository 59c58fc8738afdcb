"""A small, sha256-pinned weight delta on top of a packaged sentence-transformers model.

A delta file (safetensors) holds, for some parameters of the base model, `trained - base` in
fp16 (the differences of a few hundred optimiser steps are small, so fp16 keeps them to ~1e-7
absolute), and string metadata (base package and its model.safetensors sha256, recipe, seed,
data). `apply_delta` adds them (in fp32, elementwise: the same result on every machine) to the
base weights and writes a sentence-transformers directory that `encoder.build_encoder` exports
like the package itself. No training: `crossguard.models.finetune_encoder --train-layers K`
writes the delta offline.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import sha256_file
from crossguard.models._common import require

WEIGHTS_FILE = "model.safetensors"
FORMAT = "crossguard-weight-delta/1"


def write_delta(
    trained: dict[str, Any], base: dict[str, Any], path: Path, metadata: dict[str, str]
) -> dict[str, float]:
    """Write `trained[name] - base[name]` (fp16) for every name of `trained` into `path`, with
    `metadata`; returns the largest |difference| and the largest fp16 rounding error."""
    torch = require("torch")
    st = require("safetensors.torch")
    tensors, biggest, rounding = {}, 0.0, 0.0
    for name, value in sorted(trained.items()):
        diff = value.detach().float() - base[name].detach().float()
        half = diff.to(torch.float16).contiguous()
        tensors[name] = half
        biggest = max(biggest, float(diff.abs().max()))
        rounding = max(rounding, float((half.float() - diff).abs().max()))
    path.parent.mkdir(parents=True, exist_ok=True)
    st.save_file(tensors, str(path), metadata={"format": FORMAT, **metadata})
    return {"max_abs_delta": biggest, "max_fp16_rounding": rounding}


def read_metadata(path: Path) -> dict[str, str]:
    safetensors = require("safetensors")
    with safetensors.safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def apply_delta(
    delta: Path, base_dir: Path, out_dir: Path, *, sha256: str | None = None
) -> dict[str, str]:
    """Write base_dir (a sentence-transformers directory) with `delta` added to its weights into
    out_dir; returns the delta's metadata. Raises ModelError when the delta's sha256 is not
    `sha256`, when the base weights are not those the delta was made on, or when a name or shape
    does not match."""
    st = require("safetensors.torch")
    got = sha256_file(delta)
    if sha256 is not None and got != sha256:
        raise ModelError(f"weight delta {delta}: sha256 {got}, expected {sha256}")
    meta = read_metadata(delta)
    if meta.get("format") != FORMAT:
        raise ModelError(f"weight delta {delta}: format {meta.get('format')!r}, not {FORMAT}")
    base_sha = sha256_file(base_dir / WEIGHTS_FILE)
    if meta.get("base_sha256") != base_sha:
        raise ModelError(
            f"weight delta {delta} was made on base weights {meta.get('base_sha256')}, "
            f"but {base_dir / WEIGHTS_FILE} is {base_sha}"
        )
    weights = st.load_file(str(base_dir / WEIGHTS_FILE))
    diffs = st.load_file(str(delta))
    for name, diff in diffs.items():
        if name not in weights or weights[name].shape != diff.shape:
            raise ModelError(f"weight delta {delta}: {name} does not match the base weights")
        weights[name] = (weights[name].float() + diff.float()).to(weights[name].dtype)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(base_dir, out_dir)
    st.save_file(
        {k: v.contiguous() for k, v in weights.items()},
        str(out_dir / WEIGHTS_FILE),
        metadata={"format": "pt"},
    )
    return meta
