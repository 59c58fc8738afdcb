"""Build the fp16 variant of the MiniLM-L6 encoder for GPUs: minilm-l6-encoder-fp16/<v>, where
<v> is the version of minilm-l6-encoder it is derived from.

onnxruntime's transformer optimizer fuses the fp32 graph (EmbedLayerNormalization, Attention,
SkipLayerNormalization, BiasGelu: `optimize_model(model_type="bert", num_heads=12,
hidden_size=384, opt_level=0)`) and converts it to fp16 with fp32 inputs and outputs
(`convert_float_to_float16(keep_io_types=True)`). Its parity with fp32 is checked here, on the
CPU: the embedding's cosine with fp32's on PARITY_SENTENCES (padded batch and one text at a
time) at least FP16_MIN_COSINE, and the "any category" AUPRC of the text model with this
encoder within FP16_MAX_AUPRC_DROP of fp32's on the validation split of the labeled data
(crossguard.models.evaluate). The manifest records both and `fp16_parity_ok`; the text service
serves this variant on CUDA by default only when it is true (CROSSGUARD_TEXT_ENCODER_PRECISION=
auto), and a failing or unchecked parity leaves fp32 there.

The CPU check covers the weights' rounding to fp16 only: onnxruntime's CPU provider has few
fp16 kernels and runs the fused nodes in fp32 behind inserted casts (measured: cosine 0.999998,
AUPRC equal to fp32's to every digit). fp16 arithmetic happens on the GPU, so the entry also
holds PARITY_FILE (the parity texts and their fp32 embeddings), and the text model checks the
cosine on the GPU when it first loads this variant there, logs it, and serves fp32 when it
fails (crossguard.text.model.TextEncoder). AUPRC on a GPU: `crossguard eval text --precision
fp16` on that machine.

Build-time only (onnxruntime.transformers, onnx).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.model_repository import MODEL_FILE, Manifest, ModelEntry, ModelRepository
from crossguard.models import encoder as _encoder
from crossguard.models._common import (
    ProgressFn,
    cpu_session,
    dist_version,
    require,
    stderr_progress,
)

NAME = "minilm-l6-encoder-fp16"
PARITY_FILE = "parity.json"
VERSION = _encoder.VERSION  # the fp32 entry it is derived from
FP16_MIN_COSINE = 0.999
FP16_MAX_AUPRC_DROP = 0.005
NUM_HEADS = 12
HIDDEN_SIZE = 384
DESCRIPTION = (
    "onnxruntime.transformers.optimizer.optimize_model(model_type='bert', num_heads={heads}, "
    "hidden_size={hidden}, opt_level=0) + convert_float_to_float16(keep_io_types=True) of "
    "{source}"
)


def optimize_fp16(src: Path, dst: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """The fused fp16 graph of `src` at `dst`; returns the fused operator counts."""
    require("onnx")
    optimizer = require("onnxruntime.transformers.optimizer")
    # The optimizer logs every fusion at WARNING on the root logger.
    logging.disable(logging.WARNING)
    try:
        model = optimizer.optimize_model(
            str(src),
            model_type="bert",
            num_heads=num_heads,
            hidden_size=hidden_size,
            opt_level=0,
        )
        fused = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
        model.convert_float_to_float16(keep_io_types=True)
        model.save_model_to_file(str(dst))
    finally:
        logging.disable(logging.NOTSET)
    return fused


def embedding_cosines(fp32: Path, fp16: Path, tokenizer: Path, texts: list[str]) -> list[float]:
    """Cosine of each text's fp16 embedding with its fp32 one, padded batch and one by one."""
    tokenizers = require("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(tokenizer))
    s32, s16 = cpu_session(fp32), cpu_session(fp16)
    cosines: list[float] = []
    for batches in ([texts], [[t] for t in texts]):
        for batch in batches:
            a = _encoder.onnx_embed(s32, tok, batch)
            b = _encoder.onnx_embed(s16, tok, batch)
            den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
            cosines.extend((np.sum(a * b, axis=-1) / np.maximum(den, 1e-12)).tolist())
    return cosines


def parity_verdict(
    min_cosine: float, auprc_fp32: float | None, auprc_fp16: float | None
) -> tuple[bool, str]:
    """(ok, reason) of the fp16 parity rule: cosine ≥ FP16_MIN_COSINE and "any" AUPRC within
    FP16_MAX_AUPRC_DROP of fp32's (unchecked AUPRC is not ok)."""
    if not min_cosine >= FP16_MIN_COSINE:
        return False, f"embedding cosine {min_cosine:.5f} < {FP16_MIN_COSINE}"
    if auprc_fp32 is None or auprc_fp16 is None:
        return False, "'any' AUPRC not checked (no labeled data)"
    drop = auprc_fp32 - auprc_fp16
    if drop > FP16_MAX_AUPRC_DROP:
        return (
            False,
            f"'any' AUPRC {auprc_fp16:.4f} vs fp32 {auprc_fp32:.4f} (> {FP16_MAX_AUPRC_DROP})",
        )
    return True, f"cosine ≥ {min_cosine:.5f}, 'any' AUPRC {auprc_fp16:.4f} vs fp32 {auprc_fp32:.4f}"


def any_auprc(repo: ModelRepository, precision: str, data_dir: Path | None) -> float | None:
    """ "any" AUPRC of the text model with the `precision` encoder on the validation split, on
    the CPU; None when the labeled data is not there."""
    from crossguard.core.settings import ModelSettings
    from crossguard.models.evaluate import ANY, eval_text

    try:
        report = eval_text(
            repo,
            data_dir=data_dir,
            precision=precision,
            settings=ModelSettings(
                model_repository=repo.root, onnx_providers="CPUExecutionProvider"
            ),
        )
    except FileNotFoundError:
        return None
    return float(report.by_name()[ANY].auprc)


def build_encoder_fp16(
    repo: ModelRepository,
    *,
    source: ModelEntry | None = None,
    num_heads: int = NUM_HEADS,
    hidden_size: int = HIDDEN_SIZE,
    check_auprc: bool = True,
    data_dir: Path | None = None,
    name: str = NAME,
    progress: ProgressFn = stderr_progress,
) -> ModelEntry:
    """Build `name`/<source version> from `source` (default: minilm-l6-encoder/VERSION in
    `repo`) and record its parity. `check_auprc=False` (or no labeled data) records the cosine
    only, and the variant is then not served by default."""
    t0 = time.perf_counter()
    source = source or repo.get(_encoder.NAME, _encoder.VERSION)
    version = source.manifest.version
    tokenizer = source.manifest.preprocessing["tokenizer"]
    out_dir = repo.fresh_entry_dir(name, version)
    progress(f"{name}: transformer optimizer (bert, {num_heads} heads) + fp16 -> {MODEL_FILE}")
    fused = optimize_fp16(source.onnx_path, out_dir / MODEL_FILE, num_heads, hidden_size)
    shutil.copyfile(source.file(tokenizer), out_dir / tokenizer)
    cosines = embedding_cosines(
        source.onnx_path, out_dir / MODEL_FILE, out_dir / tokenizer, _encoder.PARITY_SENTENCES
    )
    min_cosine = float(min(cosines))
    # The reference the text model checks this variant against on a GPU.
    reference = _encoder.onnx_embed(
        cpu_session(source.onnx_path),
        require("tokenizers").Tokenizer.from_file(str(out_dir / tokenizer)),
        _encoder.PARITY_SENTENCES,
    )
    (out_dir / PARITY_FILE).write_text(
        json.dumps(
            {
                "texts": _encoder.PARITY_SENTENCES,
                "embedding": [[round(float(x), 7) for x in row] for row in reference],
                "min_cosine": FP16_MIN_COSINE,
                "reference": f"{source.manifest.name}/{version} {MODEL_FILE} (fp32), CPU",
            }
        )
    )
    progress(f"{name}: embedding cosine with fp32 ≥ {min_cosine:.5f} on the parity texts")
    metrics: dict[str, Any] = {
        "fp16_embedding_min_cosine": min_cosine,
        "fp16_embedding_mean_cosine": float(np.mean(cosines)),
        "fp16_min_cosine_limit": FP16_MIN_COSINE,
        "fp16_max_auprc_drop": FP16_MAX_AUPRC_DROP,
        "fused_operators": fused,
        "parity_device": f"CPU (onnxruntime {dist_version('onnxruntime')} "
        "CPUExecutionProvider: fp16 weights, fp32 arithmetic); on CUDA the text model checks "
        f"the embedding cosine against {PARITY_FILE} at first load",
    }
    # Write the manifest first: the AUPRC check loads this entry through the text model.
    manifest = Manifest(
        name=name,
        version=version,
        task=source.manifest.task,
        inputs=list(source.manifest.inputs),
        outputs=list(source.manifest.outputs),
        preprocessing={
            **{
                k: v
                for k, v in source.manifest.preprocessing.items()
                if k not in ("variants", "int8")
            },
            "derived_from": f"{source.manifest.name}/{version}",
            "parity_file": PARITY_FILE,
            "fp16": DESCRIPTION.format(
                heads=num_heads, hidden=hidden_size, source=f"{source.manifest.name}/{version}"
            ),
        },
        provenance=source.manifest.provenance.model_copy(
            update={"built_by": "crossguard models build (fp16 variant)"}
        ),
        metrics={**metrics, "fp16_parity_ok": False, "fp16_parity": "not checked yet"},
    )
    repo.write_manifest(out_dir, manifest)
    auprc32 = auprc16 = None
    if check_auprc:
        progress(f"{name}: 'any' AUPRC on the validation split, fp32 and fp16 encoders (CPU)")
        auprc32 = any_auprc(repo, "fp32", data_dir)
        auprc16 = any_auprc(repo, "fp16", data_dir) if auprc32 is not None else None
    ok, reason = parity_verdict(min_cosine, auprc32, auprc16)
    progress(f"{name}: parity {'holds' if ok else 'does NOT hold'}: {reason}")
    metrics.update(
        {
            "fp16_parity_ok": ok,
            "fp16_parity": reason,
            "any_auprc_fp32": auprc32,
            "any_auprc_fp16": auprc16,
            "build_seconds": round(time.perf_counter() - t0, 2),
        }
    )
    repo.write_manifest(out_dir, manifest.model_copy(update={"metrics": metrics}))
    return repo.get(name, version)
