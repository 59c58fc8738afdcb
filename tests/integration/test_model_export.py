"""export_checkpoint on tiny randomly initialised HF checkpoints built here (text, image, audio)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelRepository
from crossguard.models._common import no_progress
from crossguard.models.export import detect_task, export_checkpoint

pytestmark = pytest.mark.integration

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LABELS = {0: "safe", 1: "hate", 2: "violence"}
WORDS = [
    "hello",
    "world",
    "this",
    "is",
    "a",
    "some",
    "##what",
    "longer",
    "sentence",
    "to",
    "exercise",
    "padding",
    "and",
    "masks",
    "short",
    "hate",
    "kill",
]


# What every tiny random model shares: 2 small layers and the test labels.
TINY: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 37,
    "id2label": LABELS,
    "label2id": {v: k for k, v in LABELS.items()},
}


def _save_tiny(out: Path, config_cls: Any, model_cls: Any, **config: Any) -> Path:
    """A `model_cls` of TINY size (plus `config`), randomly initialised with seed 0, in `out`."""
    torch.manual_seed(0)
    model_cls(config_cls(**config, **TINY)).eval().save_pretrained(out)
    return out


def _tiny_bert(tmp_path: Path) -> Path:
    out = tmp_path / "bert"
    out.mkdir()
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = transformers.BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    tok.model_max_length = 64
    _save_tiny(
        out,
        transformers.BertConfig,
        transformers.BertForSequenceClassification,
        vocab_size=len(tok),
        max_position_embeddings=64,
    )
    tok.save_pretrained(out)
    return out


def _tiny_vit(tmp_path: Path) -> Path:
    out = _save_tiny(
        tmp_path / "vit",
        transformers.ViTConfig,
        transformers.ViTForImageClassification,
        image_size=32,
        patch_size=8,
        num_channels=3,
    )
    # Written by hand: ViTImageProcessor itself needs Pillow, which export does not.
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "ViTImageProcessor",
                "do_resize": True,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
                "resample": 2,
                "size": {"height": 32, "width": 32},
            }
        )
    )
    return out


def _tiny_wav2vec2(tmp_path: Path) -> Path:
    out = _save_tiny(
        tmp_path / "w2v",
        transformers.Wav2Vec2Config,
        transformers.Wav2Vec2ForSequenceClassification,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 4),
        num_feat_extract_layers=2,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
    )
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(out)
    return out


def _tiny_ast(tmp_path: Path) -> Path:
    out = _save_tiny(
        tmp_path / "ast",
        transformers.ASTConfig,
        transformers.ASTForAudioClassification,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        max_length=64,
        num_mel_bins=32,
    )
    transformers.ASTFeatureExtractor(num_mel_bins=32, max_length=64).save_pretrained(out)
    return out


def _check(entry_dir: Path, task: str) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((entry_dir / "manifest.json").read_text())
    assert manifest["task"] == f"{task}-classification"
    assert manifest["labels"] == ["safe", "hate", "violence"]
    assert manifest["taxonomy"] == {"hate": "hate", "violence": "violence"}
    assert manifest["metrics"]["parity_max_abs_diff"] <= 1e-4
    assert set(manifest["files"]) >= {"model.onnx"}
    assert manifest["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}]
    return manifest


def test_export_text_classifier(tmp_path: Path) -> None:
    ckpt = _tiny_bert(tmp_path)
    assert detect_task(ckpt) == "text"
    entry = export_checkpoint(
        ckpt, tmp_path / "repo", name="tiny-bert", version="1", progress=no_progress
    )
    entry.verify()
    manifest = _check(entry.path, "text")
    pre = manifest["preprocessing"]
    assert isinstance(pre, dict)
    assert pre["tokenizer"] == "tokenizer.json" and pre["max_length"] == 64
    inputs = manifest["inputs"]
    assert isinstance(inputs, list)
    assert {i["name"] for i in inputs} == {"input_ids", "attention_mask", "token_type_ids"}

    # The shipped tokenizer.json + model.onnx reproduce torch without transformers.
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(entry.path / "tokenizer.json"))
    tok.enable_padding()
    encs = tok.encode_batch(["hello world", "kill this sentence"])
    feeds = {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
    }
    session = ort.InferenceSession(str(entry.onnx_path))
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feeds["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
    got = session.run(["logits"], feeds)[0]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(ckpt).eval()
    with torch.no_grad():
        ref = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert float(np.max(np.abs(got - ref))) <= 1e-4


def test_export_image_classifier(tmp_path: Path) -> None:
    ckpt = _tiny_vit(tmp_path)
    assert detect_task(ckpt) == "image"
    entry = export_checkpoint(
        ckpt, tmp_path / "repo", name="tiny-vit", version="2", progress=no_progress
    )
    manifest = _check(entry.path, "image")
    pre = manifest["preprocessing"]
    assert isinstance(pre, dict)
    assert pre["height"] == 32 and pre["image_mean"] == [0.5, 0.5, 0.5]
    assert "preprocessor_config.json" in entry.manifest.files
    assert ModelRepository(tmp_path / "repo").versions("tiny-vit") == ["2"]


@pytest.mark.parametrize("builder", [_tiny_wav2vec2, _tiny_ast], ids=["wav2vec2", "ast"])
def test_export_audio_classifier(tmp_path: Path, builder: object) -> None:
    ckpt = builder(tmp_path)  # type: ignore[operator]
    assert detect_task(ckpt) == "audio"
    entry = export_checkpoint(
        ckpt, tmp_path / "repo", name="tiny-audio", version="1", progress=no_progress
    )
    manifest = _check(entry.path, "audio")
    pre = manifest["preprocessing"]
    assert isinstance(pre, dict)
    assert pre["sampling_rate"] == 16000


def test_export_rejects_non_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"config\.json"):
        export_checkpoint(tmp_path, tmp_path / "repo", name="x", version="1", progress=no_progress)


def test_cli_models_export_prints_parity(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "cli-repo"

    def export(checkpoint: Path, name: str) -> subprocess.CompletedProcess[str]:
        args = ["models", "export", str(checkpoint), "--name", name, "--root", str(root)]
        return subprocess.run(
            [sys.executable, "-m", "crossguard.cli", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    result = export(_tiny_bert(tmp_path), "tiny")
    assert result.returncode == 0, result.stderr
    assert "parity max abs diff" in result.stdout
    assert (root / "tiny" / "1" / "manifest.json").is_file()

    missing = export(tmp_path, "x")
    assert missing.returncode != 0
    assert "Traceback" not in missing.stderr, missing.stderr
