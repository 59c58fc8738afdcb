"""The fp16 encoder variant: its build (onnxruntime's transformer optimizer + fp16) on a tiny
randomly initialised BERT built here, its parity rule, and the real variant served by the text
model (on the CPU here; the GPU check at first load runs the same code on CUDA)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crossguard.core.model_repository import (
    Manifest,
    ModelEntry,
    ModelRepository,
    Provenance,
    TensorSpec,
)
from crossguard.core.settings import ModelSettings
from crossguard.models import encoder as real_encoder
from crossguard.models.encoder_fp16 import (
    FP16_MIN_COSINE,
    NAME,
    PARITY_FILE,
    build_encoder_fp16,
    parity_verdict,
)
from crossguard.text.model import TextEncoder, TextModel

pytestmark = pytest.mark.integration

CPU = "CPUExecutionProvider"


def test_parity_rule() -> None:
    assert parity_verdict(0.9995, 0.86, 0.857)[0]
    assert not parity_verdict(0.998, 0.86, 0.86)[0]  # cosine
    ok, reason = parity_verdict(0.9999, 0.86, 0.85)  # AUPRC drop 0.01
    assert not ok and "AUPRC" in reason
    ok, reason = parity_verdict(0.9999, None, None)
    assert not ok and "not checked" in reason


def _tiny_encoder_entry(tmp_path: Path, real: ModelEntry) -> ModelEntry:
    """An encoder entry like minilm-l6-encoder (same tokenizer, pooling and outputs) over a
    tiny random BERT (6 layers of 32, 2 heads), exported by the real exporter."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    checkpoint = tmp_path / "tiny-bert"
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=real_encoder.LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    transformers.BertModel(config).eval().save_pretrained(checkpoint)
    repo = ModelRepository(tmp_path / "models")
    out = repo.fresh_entry_dir("tiny-encoder", "1")
    real_encoder._export(checkpoint, out / "model.onnx")
    shutil.copyfile(real.file("tokenizer.json"), out / "tokenizer.json")
    manifest = Manifest(
        name="tiny-encoder",
        version="1",
        task="sentence-embedding",
        inputs=[
            TensorSpec(name=n, dtype="int64", shape=["batch", "sequence"])
            for n in ("input_ids", "attention_mask")
        ],
        outputs=[
            TensorSpec(name="embedding", dtype="float32", shape=["batch", 32]),
            TensorSpec(name="features", dtype="float32", shape=["batch", 32 * 7]),
        ],
        preprocessing={"tokenizer": "tokenizer.json", "max_length": 256},
        provenance=Provenance(source_package="test", source_version="0", licence="none"),
    )
    repo.write_manifest(out, manifest)
    return repo.get("tiny-encoder", "1")


def test_fp16_build_on_a_tiny_model(tmp_path: Path, model_repository: ModelRepository) -> None:
    source = _tiny_encoder_entry(
        tmp_path, model_repository.get(real_encoder.NAME, real_encoder.VERSION)
    )
    repo = ModelRepository(tmp_path / "models")
    entry = build_encoder_fp16(
        repo, source=source, num_heads=2, hidden_size=32, check_auprc=False, progress=lambda _: None
    )
    entry.verify()
    metrics = entry.manifest.metrics
    assert metrics["fused_operators"].get("Attention") == real_encoder.LAYERS  # fused
    assert metrics["fp16_embedding_min_cosine"] >= FP16_MIN_COSINE
    # Without the AUPRC check the variant is not served by default.
    assert metrics["fp16_parity_ok"] is False and "not checked" in metrics["fp16_parity"]
    assert entry.manifest.preprocessing["derived_from"] == "tiny-encoder/1"
    parity = json.loads(entry.file(PARITY_FILE).read_text())
    assert len(parity["texts"]) == len(parity["embedding"]) and len(parity["embedding"][0]) == 32
    import onnx

    graph = onnx.load(str(entry.onnx_path))
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # io fp32
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)


@pytest.fixture(scope="module")
def fp16_model(model_repository: ModelRepository) -> Any:
    model = TextModel(
        model_repository,
        ModelSettings(model_repository=model_repository.root, onnx_providers=CPU),
        precision="fp16",
    )
    model.load()
    yield model
    model.close()


def test_the_real_fp16_variant_scores_as_fp32(
    model_repository: ModelRepository, fp16_model: Any
) -> None:
    entry = model_repository.get(NAME)
    assert entry.manifest.metrics["fp16_parity_ok"] is True  # recorded by models build
    fp32 = TextModel(
        model_repository,
        ModelSettings(model_repository=model_repository.root, onnx_providers=CPU),
        precision="fp32",
    )
    fp32.load()
    texts = ["I will find you and kill you", "Thanks for the lovely dinner!", "you idiot"]
    try:
        want = fp32.predict(texts)
    finally:
        fp32.close()
    got = fp16_model.predict(texts)
    assert fp16_model.encoder_precision == "fp16"
    assert ("minilm-l6-encoder", f"{real_encoder.VERSION}-fp16") in fp16_model.model_infos
    for a, b in zip(got, want, strict=True):
        assert max(abs(a[c] - b[c]) for c in b) < 0.01


def test_the_device_check_falls_back_to_fp32_when_parity_fails(
    tmp_path: Path, model_repository: ModelRepository, fp16_model: Any
) -> None:
    """What the text model runs when it first loads fp16 on CUDA, run here on the CPU: the
    cosine with the stored fp32 reference, and fp32 when it fails."""
    encoder: TextEncoder = fp16_model._encoder
    entry = model_repository.get(NAME)
    assert encoder._check_fp16_on_device(entry, "auto") == ""
    assert encoder.device_parity is not None and encoder.device_parity >= FP16_MIN_COSINE

    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    parity = json.loads(entry.file(PARITY_FILE).read_text())
    parity["embedding"] = (-np.asarray(parity["embedding"])).tolist()  # opposite directions
    (broken_dir / PARITY_FILE).write_text(json.dumps(parity))
    broken = ModelEntry(broken_dir, entry.manifest)
    assert encoder._check_fp16_on_device(broken, "auto") == "model.onnx"  # serve fp32
    assert encoder.device_parity is not None and encoder.device_parity < 0
