"""`crossguard models export` for a local Hugging Face CLIP checkpoint (CLIPModel): the image
and text towers as two ONNX graphs with L2-normalised projected embeddings, the tokenizer and
the image preprocessing, in the model repository layout:

    <name>/<version>/model.onnx      image tower: pixel_values [batch, 3, H, W] -> image_embeds
                     text.onnx       text tower: input_ids, attention_mask -> text_embeds
                     tokenizer.json  the checkpoint's fast tokenizer
                     manifest.json   preprocessing (size, crop, mean, std, max_length,
                                     logit_scale), parity of both towers against torch

Build-time only (torch, transformers). The runtime is crossguard.vision.clip.
"""

from __future__ import annotations

import json
import shutil
import time
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
from crossguard.models._common import (
    OPSET,
    PARITY_LIMIT,
    TOKEN_INPUT_NAMES,
    ProgressFn,
    dist_version,
    export_torch,
    onnx_parity,
    parity_metrics,
    require,
    token_dynamic_axes,
    token_inputs,
)

TEXT_FILE = "text.onnx"
TOKENIZER_FILE = "tokenizer.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
# OpenAI CLIP's normalisation, for checkpoints without a preprocessor_config.json.
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def is_clip(checkpoint_dir: Path) -> bool:
    try:
        config = json.loads((checkpoint_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return str(config.get("model_type", "")) == "clip"


def _towers(model: Any) -> tuple[Any, Any]:
    torch = require("torch")

    class ImageTower(torch.nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            emb = self.model.get_image_features(pixel_values=pixel_values).pooler_output
            return emb / emb.norm(dim=-1, keepdim=True)

    class TextTower(torch.nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            emb = self.model.get_text_features(
                input_ids=input_ids, attention_mask=attention_mask
            ).pooler_output
            return emb / emb.norm(dim=-1, keepdim=True)

    return ImageTower().eval(), TextTower().eval()


def _size(value: Any, default: int) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if isinstance(value, dict):
        if "shortest_edge" in value:
            n = int(value["shortest_edge"])
            return n, n
        return int(value.get("height", default)), int(value.get("width", default))
    return default, default


def export_clip(
    checkpoint_dir: Path,
    out_root: Path,
    *,
    name: str,
    version: str,
    progress: ProgressFn,
    parity_limit: float = PARITY_LIMIT,
) -> ModelEntry:
    torch = require("torch")
    transformers = require("transformers")
    tokenizers = require("tokenizers")
    require("onnxruntime")
    t0 = time.perf_counter()
    tokenizer_src = checkpoint_dir / TOKENIZER_FILE
    if not tokenizer_src.is_file():
        raise ModelError(
            f"{checkpoint_dir}: a CLIP checkpoint needs its fast tokenizer ({TOKENIZER_FILE}); "
            "save it with CLIPTokenizerFast.save_pretrained"
        )
    progress(f"{name}/{version}: loading CLIP from {checkpoint_dir}")
    model = transformers.CLIPModel.from_pretrained(str(checkpoint_dir)).eval()
    config = model.config
    pre_cfg: dict[str, Any] = {}
    if (checkpoint_dir / PREPROCESSOR_FILE).is_file():
        pre_cfg = json.loads((checkpoint_dir / PREPROCESSOR_FILE).read_text())
    image_size = int(config.vision_config.image_size)
    resize = _size(pre_cfg.get("size"), image_size)[0]
    crop_h, crop_w = _size(pre_cfg.get("crop_size"), image_size)
    max_length = int(config.text_config.max_position_embeddings)

    repo = ModelRepository(Path(out_root))
    out = repo.fresh_entry_dir(name, version)
    shutil.copy2(tokenizer_src, out / TOKENIZER_FILE)
    image_tower, text_tower = _towers(model)
    rng = np.random.default_rng(0)

    progress(f"{name}/{version}: exporting the image and text towers (opset {OPSET})")
    dummy_px = rng.standard_normal((2, 3, crop_h, crop_w)).astype(np.float32)
    export_torch(
        image_tower,
        (torch.from_numpy(dummy_px),),
        out / MODEL_FILE,
        input_names=["pixel_values"],
        output_names=["image_embeds"],
        dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
    )
    tok = tokenizers.Tokenizer.from_file(str(tokenizer_src))
    tok.enable_truncation(max_length=max_length)
    texts = ["a photo of a cat", "a drawing", "hello world, this is a longer prompt"]
    ids, mask = _encode(tok, texts)
    export_torch(
        text_tower,
        (torch.from_numpy(ids), torch.from_numpy(mask)),
        out / TEXT_FILE,
        input_names=TOKEN_INPUT_NAMES,
        output_names=["text_embeds"],
        dynamic_axes=token_dynamic_axes("text_embeds"),
    )
    check_px = rng.standard_normal((3, 3, crop_h, crop_w)).astype(np.float32)
    with torch.no_grad():
        ref_img = image_tower(torch.from_numpy(check_px)).numpy()
        ref_txt = text_tower(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    img_diff = onnx_parity(
        f"{name}/{version} image tower",
        out / MODEL_FILE,
        {"pixel_values": check_px},
        "image_embeds",
        ref_img,
        "torch",
        progress,
        parity_limit,
    )
    txt_diff = onnx_parity(
        f"{name}/{version} text tower",
        out / TEXT_FILE,
        {"input_ids": ids, "attention_mask": mask},
        "text_embeds",
        ref_txt,
        "torch",
        progress,
        parity_limit,
    )
    dim = int(ref_img.shape[-1])
    manifest = Manifest(
        name=name,
        version=version,
        task="clip",
        inputs=[
            TensorSpec(name="pixel_values", dtype="float32", shape=["batch", 3, crop_h, crop_w]),
            *token_inputs(),
        ],
        outputs=[
            TensorSpec(name="image_embeds", dtype="float32", shape=["batch", dim]),
            TensorSpec(name="text_embeds", dtype="float32", shape=["batch", dim]),
        ],
        preprocessing={
            "text_graph": TEXT_FILE,
            "tokenizer": TOKENIZER_FILE,
            "max_length": max_length,
            "layout": "NCHW",
            "resize_shortest_edge": resize,
            "resample": "bicubic",
            "crop": [crop_h, crop_w],
            "rescale": 1.0 / 255.0,
            "mean": [
                float(v) for v in pre_cfg.get("image_mean", [0.48145466, 0.4578275, 0.40821073])
            ],
            "std": [
                float(v) for v in pre_cfg.get("image_std", [0.26862954, 0.26130258, 0.27577711])
            ],
            "logit_scale": float(model.logit_scale.exp().item()),
            "embeddings": "L2-normalised (cosine = dot product)",
        },
        provenance=Provenance(
            source_package=f"local checkpoint {checkpoint_dir}",
            source_version=str(getattr(config, "_name_or_path", "") or "local"),
            licence="see the checkpoint's model card",
            description=f"CLIPModel; exported with torch {dist_version('torch')}, transformers "
            f"{dist_version('transformers')}",
            built_by=f"crossguard models export {checkpoint_dir} --name {name} --version {version}",
        ),
        metrics={
            **parity_metrics(max(img_diff, txt_diff), f"torch {dist_version('torch')} fp32"),
            "parity_image_tower": img_diff,
            "parity_text_tower": txt_diff,
            "opset": OPSET,
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out, manifest)
    return repo.get(name, version)


def _encode(tok: Any, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64, right-padded with the tokenizer's pad id or 0."""
    encs = tok.encode_batch(texts)
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1
    return ids, mask
