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
