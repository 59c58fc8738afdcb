from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.consistency.config import load_fusion_config
from crossguard.consistency.parts import TextKind
from crossguard.core.model_repository import ModelRepository
from crossguard.core.results import Modality
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.fusion_data import DevItem
from crossguard.models.fusion_derive import (
    DerivedCache,
    cache_key,
    derive_slot,
    limited,
    render_chunks,
    texts_of,
    with_derived,
)
from crossguard.models.fusion_eval import ScoredItem, fit_reliability

pytestmark = pytest.mark.unit


def test_render_chunks_cut_at_words_within_the_size() -> None:
    text = "one two three  four\nfive " + "x" * 12
    pieces = render_chunks(text, size=10)
    assert pieces == ["one two", "three four", "five", "x" * 12]
    assert render_chunks("  ") == []


def test_cache_key_depends_on_method_and_text() -> None:
    assert cache_key("a", "ocr/1") != cache_key("a", "ocr/2")
    assert cache_key("a", "ocr/1") != cache_key("b", "ocr/1")
    assert cache_key("a", "ocr/1") == cache_key("a", "ocr/1")


def test_derived_cache_survives_a_reopen(tmp_path: Path) -> None:
    cache = DerivedCache(tmp_path)
    cache.put("hello", "m/1", "he11o")
    cache.put("", "m/1", "")
    again = DerivedCache(tmp_path)
    assert again.get("hello", "m/1") == "he11o"
    assert again.get("", "m/1") == ""
    assert again.get("hello", "m/2") is None


def _item(id_: str, *texts: tuple[TextKind, str]) -> DevItem:
    return DevItem(id_, "split", texts, {Category.HATE: 1})


class _Upper:
    """A stand-in reader (the real ones load OCR and Whisper): upper-cases, reads "blank" as
    nothing, and counts its calls."""

    kind = TextKind.OCR
    method = "upper/1"

    def __init__(self, repository: ModelRepository, settings: ModelSettings) -> None:
        self.calls = 0

    def derive(self, text: str) -> str:
        self.calls += 1
        return "" if text == "blank" else text.upper()

    def close(self) -> None:
        return None


def test_derive_slot_uses_the_cache_and_with_derived_replaces_the_slot(tmp_path: Path) -> None:
    items = [
        _item("b", (TextKind.CAPTION, "cap"), (TextKind.OCR, "in image")),
        _item("a", (TextKind.OCR, "blank")),
        _item("c", (TextKind.CAPTION, "cap2"), (TextKind.OCR, "blank")),
    ]
    assert [it.id for it in limited(items, 2)] == ["a", "b"]
    template = DevItem("z", "turn", ((TextKind.OCR, "x"),), {Category.HATE: 1})
    assert [it.id for it in limited([*items, template], 1)] == ["a", "z"]
    assert texts_of(items, TextKind.OCR) == ["in image", "blank"]
    made: list[_Upper] = []

    def make(repo: ModelRepository, settings: ModelSettings) -> _Upper:
        made.append(_Upper(repo, settings))
        return made[-1]

    repo, settings = ModelRepository(tmp_path / "models"), ModelSettings()
    got = derive_slot(items, TextKind.OCR, repo, settings, tmp_path, make=make)
    assert got.texts == {"in image": "IN IMAGE", "blank": ""} and got.fresh == 2
    again = derive_slot(items, TextKind.OCR, repo, settings, tmp_path, make=make)
    assert again.texts == got.texts and again.fresh == 0 and made[-1].calls == 0

    out = with_derived(items, [got])
    # The slot read as nothing is left out; the item with no text left is dropped.
    assert [it.id for it in out] == ["b", "c"]
    assert out[0].texts == ((TextKind.CAPTION, "cap"), (TextKind.OCR, "IN IMAGE"))
    assert out[1].texts == ((TextKind.CAPTION, "cap2"),)


def _scored(i: int, image: float, caption: float, label: int) -> ScoredItem:
    item = DevItem(f"i{i}", "single", ((TextKind.CAPTION, "c"), (TextKind.OCR, "o")))
    item = DevItem(item.id, item.kind, item.texts, {Category.HATE: label})
    return ScoredItem(
        item,
        {TextKind.CAPTION: {Category.HATE: caption}, TextKind.OCR: {Category.HATE: image}},
        None,
        {},
    )


def test_fit_reliability_discounts_a_modality_that_overscores_benign_items() -> None:
    # Harmful items score 0.6 in their caption; benign ones 0.7 in the image (noisy OCR):
    # only a lower image reliability ranks the harmful items first.
    rows = [_scored(i, 0.1, 0.6, 1) for i in range(10)]
    rows += [_scored(10 + i, 0.7, 0.1, 0) for i in range(10)]
    got = fit_reliability(rows, load_fusion_config(), grid=(0.5, 0.8, 1.0))
    assert got[Modality.IMAGE] == 0.8  # the highest value that ranks them right
    assert got[Modality.AUDIO] == 1.0  # no audio: ties keep 1.0


def test_with_combination_cut_changes_only_that_rule() -> None:
    from crossguard.models.fusion_eval import COMBINATION_GLOB, with_combination_cut
    from crossguard.policy import default_policy

    policy = default_policy()
    moved = with_combination_cut(policy, 0.35)
    before = {r.signal: r.at_least for r in policy.escalation.inconsistency}
    after = {r.signal: r.at_least for r in moved.escalation.inconsistency}
    assert after[COMBINATION_GLOB] == 0.35
    assert {k: v for k, v in after.items() if k != COMBINATION_GLOB} == {
        k: v for k, v in before.items() if k != COMBINATION_GLOB
    }
    assert before[COMBINATION_GLOB] != 0.35  # the default policy is untouched


def test_with_joint_rule_moves_both_cuts_and_the_uncertainty_min_score() -> None:
    from crossguard.models.fusion_eval import COMBINATION_GLOB, FRAMING, with_joint_rule
    from crossguard.policy import default_policy

    policy = default_policy()
    moved = with_joint_rule(policy, 0.45, 0.3, 0.5)
    after = {r.signal: r.at_least for r in moved.escalation.inconsistency}
    before = {r.signal: r.at_least for r in policy.escalation.inconsistency}
    assert (after[COMBINATION_GLOB], after[FRAMING + "*"]) == (0.45, 0.3)
    assert after["modality_disagreement/*"] == before["modality_disagreement/*"]
    assert moved.escalation.uncertainty.min_score == 0.5
    assert (
        moved.escalation.uncertainty.max_uncertainty
        == policy.escalation.uncertainty.max_uncertainty
    )
    assert policy.escalation.uncertainty.min_score == 0.7  # the default policy is untouched


def test_combination_head_features_are_symmetric_and_items_take_their_best_pair(
    tmp_path: Path,
) -> None:
    import numpy as np

    from crossguard.models.combination_head import (
        CombinationHead,
        Embeddings,
        Pair,
        _sha,
        fit_head,
        pair_features,
    )

    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.array_equal(pair_features(a, b), pair_features(b, a))
    # Harmful pairs: both texts lean on the first axis; benign ones on the second.
    rng = np.random.default_rng(0)
    known: dict[str, list[float]] = {}
    pairs = []
    for i in range(40):
        label = i % 2
        centre = np.array([1.0, 0.0]) if label else np.array([0.0, 1.0])
        texts = (f"a{i}", f"b{i}")
        for t in texts:
            known[_sha(t)] = list(centre + rng.normal(0, 0.1, 2))
        pairs.append(Pair(*texts, label))
    emb = Embeddings(ModelRepository(tmp_path), ModelSettings(), tmp_path / "e.json", known)
    emb.ensure([t for p in pairs for t in (p.a, p.b)])  # all known: nothing to embed
    head = fit_head(pairs, emb)
    harmful, benign = emb["a1"], emb["a0"]
    assert head.score([harmful, emb["b1"]]) > 0.5 > head.score([benign, emb["b0"]])
    assert head.score([benign, emb["b0"], harmful, emb["b1"]]) == head.score([harmful, emb["b1"]])
    assert CombinationHead(np.zeros(6), 0.0).score([a]) == 0.0  # one text: no pair


def test_reading_noise_of_ocr_is_character_similarity() -> None:
    from crossguard.models.fusion_derive import Derived, reading_noise

    derived = Derived(TextKind.OCR, "m/1", {"Hello  World": "hello world", "abcd": "abce"}, 0.0, 0)
    assert reading_noise(derived) == "character similarity 87.5% (mean), 1 read exactly"
