"""Committed head weights, the heads ONNX graph + manifest, thresholds and eval metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelRepository
from crossguard.core.taxonomy import Category
from crossguard.models._common import no_progress
from crossguard.models.data import OPENAI_CATEGORIES
from crossguard.models.evaluate import average_precision, roc_auc
from crossguard.models.heads import (
    FEATURES_DIM,
    HeadWeights,
    build_heads,
    default_heads_dir,
    load_heads,
    save_heads,
)
from crossguard.models.train_heads import best_f1_threshold

pytestmark = pytest.mark.unit


def test_committed_heads_cover_openai_categories() -> None:
    heads = load_heads()
    assert heads.categories == list(OPENAI_CATEGORIES)
    assert heads.weight.shape == (8, FEATURES_DIM + 1)
    assert heads.weight.dtype == np.float32
    assert set(heads.thresholds) == set(OPENAI_CATEGORIES)
    assert all(0.0 < t < 1.0 for t in heads.thresholds.values())
    assert "train" in heads.meta["threshold_rule"]
    assert (default_heads_dir() / "heads.npz").stat().st_size < 128_000


def test_save_load_roundtrip_is_byte_stable(tmp_path: Path) -> None:
    heads = load_heads()
    save_heads(heads, tmp_path / "a")
    save_heads(load_heads(tmp_path / "a"), tmp_path / "b")
    for name in ("heads.npz", "heads.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_heads_entry_manifest_and_graph(tmp_path: Path) -> None:
    import onnxruntime as ort

    repo = ModelRepository(tmp_path)
    entry = build_heads(repo, progress=no_progress)
    entry.verify()
    m = entry.manifest
    labels = [c.value for c in OPENAI_CATEGORIES]
    assert (m.name, m.version) == ("text-heads", "5")
    assert m.labels == labels
    assert m.taxonomy == {label: label for label in labels}
    assert all(Category(v) for v in m.taxonomy.values())
    assert set(m.metrics["thresholds"]) == set(labels)
    assert [i.name for i in m.inputs] == ["features", "profanity"]
    assert m.outputs[0].name == "probabilities" and m.outputs[0].shape == ["batch", 8]
    assert set(m.files) == {"model.onnx"}
    assert m.provenance.licence and m.provenance.built_by
    assert m.preprocessing["requires"] == {"minilm-l6-encoder": "3", "profanity": "1"}
    on_disk = json.loads((entry.path / "manifest.json").read_text())
    assert len(on_disk["files"]["model.onnx"]) == 64

    heads = load_heads()
    rng = np.random.default_rng(1)
    # Like the encoder's `features`: L2-normalised 384-d blocks.
    blocks = rng.normal(size=(5, FEATURES_DIM // 384, 384))
    blocks /= np.linalg.norm(blocks, axis=2, keepdims=True)
    emb = blocks.reshape(5, FEATURES_DIM).astype(np.float32)
    prof = rng.uniform(size=5).astype(np.float32)
    sess = ort.InferenceSession(str(entry.onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(["probabilities"], {"features": emb, "profanity": prof})[0]
    np.testing.assert_allclose(got, heads.predict(emb, prof), atol=1e-6)


def test_head_weights_shape_is_checked(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="shape"):
        HeadWeights([Category.HATE], np.zeros((2, 3), np.float32), np.zeros(1, np.float32), {})
    # Weights over another width than the encoder's features are refused when built.
    narrow = HeadWeights(
        [Category.HATE], np.zeros((1, 3), np.float32), np.zeros(1, np.float32), {Category.HATE: 0.5}
    )
    save_heads(narrow, tmp_path / "weights")
    with pytest.raises(ModelError, match="read 2 features"):
        build_heads(
            ModelRepository(tmp_path / "repo"), heads_dir=tmp_path / "weights", progress=no_progress
        )


def test_best_f1_threshold_separates() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    t, f1 = best_f1_threshold(y, p)
    assert f1 == 1.0 and 0.3 < t <= 0.7
    # Ties are never split.
    t2, _ = best_f1_threshold(np.array([1, 0, 1]), np.array([0.5, 0.5, 0.1]))
    assert t2 <= 0.5


def test_metrics_match_sklearn() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    p = np.round(rng.uniform(size=300) + 0.3 * y, 2)  # rounded: ties exercised
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-9)
