"""`crossguard models export`: a local Hugging Face classification checkpoint -> model repository.

Supports AutoModelForSequenceClassification (text), AutoModelForImageClassification (image) and
AutoModelForAudioClassification (audio), detected from the checkpoint's config and
preprocessor files, and CLIPModel (crossguard.models.export_clip: two towers). Writes
<out_root>/<name>/<version>/{model.onnx, manifest.json, side files}
with labels from id2label, preprocessing from the tokenizer / image processor / feature
extractor config, and a parity check of the ONNX graph against the torch model on generated
inputs (fails when the max abs diff of the logits exceeds 1e-4 for fp32).
Build-time only: needs torch + transformers (+ onnx, onnxruntime).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal

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
from crossguard.models import export_clip
from crossguard.models._common import (
    OPSET,
    PARITY_LIMIT,
    ProgressFn,
    dist_version,
    export_torch,
    offline_hub,
    onnx_parity,
    parity_metrics,
    require,
    stderr_progress,
)

Task = Literal["text", "image", "audio"]
PREPROCESSOR_FILE = "preprocessor_config.json"
TOKENIZER_FILE = "tokenizer.json"
_SAMPLE_TEXTS = [
    "hello world",
    "this is a somewhat longer sentence to exercise padding and masks",
    "short",
    "",
]


def detect_task(checkpoint_dir: Path) -> Task:
    """text / image / audio from config.model_type and the preprocessor files present."""
    transformers = require("transformers")
    from transformers.models.auto import modeling_auto as ma

    config = transformers.AutoConfig.from_pretrained(str(checkpoint_dir))
    model_type = config.model_type
    pre = checkpoint_dir / PREPROCESSOR_FILE
    pre_cfg: dict[str, Any] = json.loads(pre.read_text()) if pre.is_file() else {}
    audio = model_type in ma.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES
    image = model_type in ma.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES
    text = model_type in ma.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
    if audio and ("feature_extractor_type" in pre_cfg or "sampling_rate" in pre_cfg or not text):
        return "audio"
    if image and ("image_processor_type" in pre_cfg or "image_mean" in pre_cfg or not text):
        return "image"
    if text:
        return "text"
    if audio:
        return "audio"
    if image:
        return "image"
    raise ModelError(
        f"{checkpoint_dir}: model_type {model_type!r} is not a text, image or audio "
        "classification architecture known to transformers"
    )


def _taxonomy(labels: list[str]) -> dict[str, str]:
    """Map labels that name a taxonomy category ("hate", "H2", "self_harm") onto it."""
    out: dict[str, str] = {}
    for label in labels:
        for candidate in (label, label.strip(), re.sub(r"[_\s]+", "-", label.strip().lower())):
            try:
                out[label] = Category.parse(candidate).value
                break
            except ValueError:
                continue
    return out


class _Logits:
    """Wrap a HF model so that export sees positional tensors and returns only logits."""

    @staticmethod
    def wrap(model: Any, names: list[str]) -> Any:
        torch = require("torch")

        class Wrapper(torch.nn.Module):  # type: ignore[name-defined,misc]
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *tensors: Any) -> Any:
                return self.model(**dict(zip(names, tensors, strict=True))).logits

        return Wrapper().eval()


def _text_inputs(
    checkpoint_dir: Path, model: Any, out_dir: Path
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    transformers = require("transformers")
    config = model.config
    max_pos = int(getattr(config, "max_position_embeddings", 512) or 512)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(checkpoint_dir))
    except Exception as exc:
        raise ModelError(f"{checkpoint_dir}: cannot load a tokenizer: {exc}") from exc
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"{checkpoint_dir}: a fast tokenizer (tokenizer.json) is required")
    max_length = int(min(getattr(tok, "model_max_length", max_pos) or max_pos, max_pos))
    tok.backend_tokenizer.save(str(out_dir / TOKENIZER_FILE))
    names = [
        n for n in tok.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    if "token_type_ids" in names and getattr(config, "type_vocab_size", 1) <= 1:
        names.remove("token_type_ids")

    def encode(texts: list[str]) -> list[np.ndarray]:
        enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        return [np.asarray(enc[n], dtype=np.int64) for n in names]

    dummy = encode(_SAMPLE_TEXTS[:2])
    check = encode(_SAMPLE_TEXTS)
    pre = {
        "tokenizer": TOKENIZER_FILE,
        "tokenizer_library": "tokenizers",
        "max_length": max_length,
        "truncation": "right",
        "padding": "dynamic",
        "lowercase": bool(getattr(tok, "do_lower_case", False)),
        "inputs": names,
    }
    return names, dummy, check, pre


# Preprocessor settings copied into the manifest (the full file is copied beside the model).
_IMAGE_KEYS: tuple[str, ...] = (
    "image_mean",
    "image_std",
    "size",
    "do_resize",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "resample",
    "crop_size",
    "do_center_crop",
    "image_processor_type",
)
_AUDIO_KEYS: tuple[str, ...] = (
    "feature_extractor_type",
    "sampling_rate",
    "feature_size",
    "do_normalize",
    "num_mel_bins",
    "max_length",
    "mean",
    "std",
    "padding_value",
    "return_attention_mask",
)


def _processor_config(
    checkpoint_dir: Path, out_dir: Path, keys: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint's preprocessor_config.json or {}, the manifest entries taken from it);
    the file is copied into the entry when present."""
    src = checkpoint_dir / PREPROCESSOR_FILE
    if not src.is_file():
        return {}, {}
    cfg: dict[str, Any] = json.loads(src.read_text())
    shutil.copy2(src, out_dir / PREPROCESSOR_FILE)
    pre: dict[str, Any] = {"processor_config": PREPROCESSOR_FILE}
    pre.update({key: cfg[key] for key in keys if key in cfg})
    return cfg, pre


def _image_inputs(
    checkpoint_dir: Path, model: Any, out_dir: Path
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    config = model.config
    channels = int(getattr(config, "num_channels", 3))
    size = getattr(config, "image_size", 224)
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    rng = np.random.default_rng(0)
    pre: dict[str, Any] = {"layout": "NCHW", "channels": channels, "height": h, "width": w}
    pre.update(_processor_config(checkpoint_dir, out_dir, _IMAGE_KEYS)[1])
    name = getattr(model, "main_input_name", "pixel_values")
    dummy = [rng.standard_normal((2, channels, h, w)).astype(np.float32)]
    check = [rng.standard_normal((3, channels, h, w)).astype(np.float32)]
    return [name], dummy, check, pre


def _audio_inputs(
    checkpoint_dir: Path, model: Any, out_dir: Path
) -> tuple[list[str], list[np.ndarray], list[np.ndarray], dict[str, Any]]:
    cfg, pre = _processor_config(checkpoint_dir, out_dir, _AUDIO_KEYS)
    name = getattr(model, "main_input_name", "input_values")
    rng = np.random.default_rng(0)
    config = model.config
    if getattr(config, "model_type", "") == "audio-spectrogram-transformer":
        frames, mels = int(config.max_length), int(config.num_mel_bins)
        pre.update({"input": "log-mel filterbank", "frames": frames, "mel_bins": mels})
        dummy = [rng.standard_normal((2, frames, mels)).astype(np.float32)]
        check = [rng.standard_normal((3, frames, mels)).astype(np.float32)]
    else:
        rate = int(cfg.get("sampling_rate", 16000))
        pre.update({"input": "raw waveform, mono float32", "sampling_rate": rate})
        dummy = [rng.standard_normal((2, rate // 4)).astype(np.float32)]
        check = [rng.standard_normal((3, rate // 2 + 123)).astype(np.float32)]
    return [name], dummy, check, pre


def export_checkpoint(
    checkpoint_dir: Path,
    out_root: Path,
    *,
    name: str,
    version: str,
    task: Task | None = None,
    progress: ProgressFn = stderr_progress,
    parity_limit: float = PARITY_LIMIT,
) -> ModelEntry:
    """Export a local HF classification checkpoint to <out_root>/<name>/<version>/.

    task: "text" | "image" | "audio"; detected from the checkpoint when None.
    Raises ModelError for an unsupported checkpoint or when parity exceeds the limit.
    """
    offline_hub()
    torch = require("torch")
    transformers = require("transformers")
    require("onnxruntime")  # before the entry directory is emptied
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "config.json").is_file():
        raise ModelError(f"{checkpoint_dir}: not a Hugging Face checkpoint (no config.json)")
    if task is None and export_clip.is_clip(checkpoint_dir):  # two towers, not a classifier
        return export_clip.export_clip(
            checkpoint_dir, out_root, name=name, version=version, progress=progress
        )
    task = task or detect_task(checkpoint_dir)
    auto = {
        "text": transformers.AutoModelForSequenceClassification,
        "image": transformers.AutoModelForImageClassification,
        "audio": transformers.AutoModelForAudioClassification,
    }[task]
    t0 = time.perf_counter()
    progress(f"{name}/{version}: loading {task} classifier from {checkpoint_dir}")
    try:
        model = auto.from_pretrained(str(checkpoint_dir), attn_implementation="eager")
    except (TypeError, ValueError):
        model = auto.from_pretrained(str(checkpoint_dir))
    model.eval()

    repo = ModelRepository(Path(out_root))
    out_dir = repo.fresh_entry_dir(name, version)

    inputs_fn = {"text": _text_inputs, "image": _image_inputs, "audio": _audio_inputs}[task]
    names, dummy, check, preprocessing = inputs_fn(checkpoint_dir, model, out_dir)

    dynamic: dict[str, dict[int, str]] = {}
    for n, arr in zip(names, dummy, strict=True):
        axes = {0: "batch"}
        if task == "text" or (task == "audio" and arr.ndim == 2):
            axes[1] = "sequence"
        dynamic[n] = axes
    dynamic["logits"] = {0: "batch"}
    wrapper = _Logits.wrap(model, names)
    progress(f"{name}/{version}: exporting to ONNX (opset {OPSET})")
    export_torch(
        wrapper,
        tuple(torch.from_numpy(a) for a in dummy),
        out_dir / MODEL_FILE,
        input_names=names,
        output_names=["logits"],
        dynamic_axes=dynamic,
    )
    with torch.no_grad():
        ref = wrapper(*(torch.from_numpy(a) for a in check)).numpy()
    diff = onnx_parity(
        f"{name}/{version}",
        out_dir / MODEL_FILE,
        dict(zip(names, check, strict=True)),
        "logits",
        ref,
        "torch",
        progress,
        parity_limit,
    )

    id2label = getattr(model.config, "id2label", None) or {}
    num_labels = int(ref.shape[-1])
    labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)]
    specs = [
        TensorSpec(
            name=n,
            dtype=str(a.dtype),
            shape=[dynamic[n].get(axis, dim) for axis, dim in enumerate(a.shape)],
        )
        for n, a in zip(names, check, strict=True)
    ]
    problem = getattr(model.config, "problem_type", None)
    preprocessing["activation"] = (
        "sigmoid" if problem == "multi_label_classification" else "softmax"
    )
    manifest = Manifest(
        name=name,
        version=version,
        task=f"{task}-classification",
        inputs=specs,
        outputs=[TensorSpec(name="logits", dtype="float32", shape=["batch", num_labels])],
        labels=labels,
        taxonomy=_taxonomy(labels),
        preprocessing=preprocessing,
        provenance=Provenance(
            source_package=f"local checkpoint {checkpoint_dir}",
            source_version=str(getattr(model.config, "_name_or_path", "") or "local"),
            licence="see the checkpoint's model card",
            description=f"{type(model).__name__} ({model.config.model_type}); exported with "
            f"torch {dist_version('torch')}, transformers {dist_version('transformers')}",
            built_by=f"crossguard models export {checkpoint_dir} --name {name} --version {version}",
        ),
        metrics={
            **parity_metrics(diff, f"torch {dist_version('torch')} fp32", parity_limit),
            "parity_batch": int(check[0].shape[0]),
            "opset": OPSET,
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(name, version)
