"""Choosing the English encoder (CROSSGUARD_TEXT_ENGLISH_ENCODER): the runtime's entry names
match the build's, bad combinations are refused before anything loads, and heads over another
encoder are aligned to the default heads' cuts without changing their ranking."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from crossguard.core.errors import ModelError
from crossguard.core.taxonomy import Category
from crossguard.models.encoder import ENCODERS, MINILM, MPNET
from crossguard.models.heads import HEADS, HeadWeights
from crossguard.models.train_heads import align_thresholds
from crossguard.text.encoders import ENGLISH_ENCODERS
from crossguard.text.model import TextModel
from crossguard.text.server import build_model
from crossguard.text.settings import TextServerSettings, TextServiceSettings

pytestmark = pytest.mark.unit


def test_runtime_and_build_name_the_same_entries() -> None:
    assert set(ENGLISH_ENCODERS) == set(HEADS) == set(ENCODERS)
    for key, (encoder, heads) in ENGLISH_ENCODERS.items():
        assert HEADS[key].name == heads
        assert HEADS[key].encoder.name == encoder == ENCODERS[key].name
    assert MPNET.features_dim == 13 * 768 and MINILM.features_dim == 7 * 384
    # MPNet fails the int8 bound (EncoderSpec.no_int8): its entry lists fp32 only.
    assert MPNET.variants == {"fp32": "model.onnx"} and set(MINILM.variants) == {"fp32", "int8"}


def test_an_unknown_encoder_or_a_variant_mpnet_lacks_is_refused_before_loading() -> None:
    with pytest.raises(ModelError, match="not one of"):
        TextModel(english_encoder="bert")
    for precision in ("int8", "fp16"):
        with pytest.raises(ModelError, match="fp32 only"):
            TextModel(english_encoder="mpnet", precision=precision)
        with pytest.raises(ValidationError, match="minilm encoder only"):
            TextServiceSettings(english_encoder="mpnet", encoder_precision=precision)
    assert TextModel(english_encoder="mpnet", precision="auto").english_encoder == "mpnet"


def test_the_setting_reaches_the_served_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSGUARD_TEXT_ENGLISH_ENCODER", "mpnet")
    settings = TextServerSettings()
    assert settings.text.english_encoder == "mpnet"
    model = build_model(settings)
    assert isinstance(model, TextModel) and model.english_encoder == "mpnet"
    monkeypatch.delenv("CROSSGUARD_TEXT_ENGLISH_ENCODER")
    assert TextServerSettings().text.english_encoder == "minilm"


def _heads(bias: list[float], thresholds: list[float]) -> HeadWeights:
    cats = [Category.HATE, Category.VIOLENCE]
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(2, 5)).astype(np.float32)
    return HeadWeights(
        cats,
        weight,
        np.array(bias, np.float32),
        dict(zip(cats, thresholds, strict=True)),
        {"weights_sha256": "x" * 64},
    )


def test_aligned_heads_cross_the_reference_cut_where_their_own_cut_was() -> None:
    own = _heads([0.1, -0.3], [0.31, 0.80])
    reference = _heads([0.0, 0.0], [0.56, 0.63])
    aligned = align_thresholds(own, reference)
    assert aligned.thresholds == reference.thresholds
    assert aligned.meta["own_thresholds"] == {"hate": 0.31, "violence": 0.80}
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(200, 4)).astype(np.float32)
    prof = rng.uniform(size=200).astype(np.float32)
    before, after = own.predict(feats, prof), aligned.predict(feats, prof)
    for k, cat in enumerate(own.categories):
        # Same order of texts, and the same texts on either side of the cut.
        assert (np.argsort(before[:, k]) == np.argsort(after[:, k])).all()
        cut_own, cut_ref = own.thresholds[cat], reference.thresholds[cat]
        same_side = (before[:, k] >= cut_own) == (after[:, k] >= cut_ref)
        assert same_side.sum() >= 199  # float32 rounding may move a text sitting on the cut
    assert aligned.meta["weights_sha256"] != own.meta["weights_sha256"]


def test_the_audio_service_scores_transcripts_with_the_chosen_encoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from crossguard.audio.server import build_model as build_audio_model
    from crossguard.audio.settings import AudioServerSettings

    assert AudioServerSettings().service.english_encoder == "minilm"
    monkeypatch.setenv("CROSSGUARD_AUDIO_ENGLISH_ENCODER", "mpnet")
    audio = build_audio_model(AudioServerSettings())
    text = audio.text_model  # type: ignore[attr-defined]
    assert isinstance(text, TextModel) and text.english_encoder == "mpnet"
