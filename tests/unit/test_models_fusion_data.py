from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from crossguard.consistency.parts import TextKind
from crossguard.core.taxonomy import Category
from crossguard.models.data import split_of
from crossguard.models.fusion_data import TURNS, DevItem, build_dev_set, part_of
from crossguard.models.fusion_eval import ScoredItem, fit_combination

pytestmark = pytest.mark.unit


def _validation_texts(prefix: str, n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        text = f"{prefix} number {i} says something rather long for a split here"
        if split_of(text) == "validation":
            out.append(text)
        i += 1
    return out


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    harmful = _validation_texts("harmful", 6)
    benign = _validation_texts("benign", 6)
    trained = "this one is in the train split 2"
    assert split_of(trained) == "train"
    rows = [{"prompt": t, "H": 1, "V": 0} for t in harmful]
    rows += [{"prompt": t, "H": 0, "V": 0} for t in [*benign, trained]]
    (tmp_path / "openai-moderation-dev.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    with (tmp_path / "davidson-labeled.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"])
        for i, t in enumerate(_validation_texts("tweet", 3)):
            w.writerow([i, 3, 0, 3, 0, 1, t])  # offensive: left out
    return tmp_path


def test_dev_set_uses_validation_texts_only_and_keeps_sources_in_one_part(
    data_dir: Path,
) -> None:
    items = build_dev_set(data_dir)
    by_kind: dict[str, list[DevItem]] = {}
    for it in items:
        by_kind.setdefault(it.kind, []).append(it)
    assert set(by_kind) == {"single", "split", "benign", "benign_split", "turn", "turn_control"}
    texts = {t for it in items if not it.kind.startswith("turn") for _, t in it.texts}
    assert "this one is in the train split 2" not in texts
    assert not any(t.startswith("tweet") for t in texts)  # Davidson "offensive" left out
    for it in by_kind["split"]:
        source = " ".join(t for _, t in it.texts)
        assert split_of(source) == "validation" and it.part == part_of(source)
        assert it.labels == {Category.HATE: 1, Category.VIOLENCE: 0} and len(it.texts) == 2
    for it in by_kind["turn"]:
        caption = dict(it.texts)[TextKind.CAPTION]
        assert caption in TURNS and it.part == part_of(caption)
        assert it.labels == {Category.HATE: 1}
    assert all(it.labels == {Category.HATE: 0} for it in by_kind["turn_control"])
    assert build_dev_set(data_dir) == items  # deterministic


def _scored(top: float, combined: float, label: int) -> ScoredItem:
    item = DevItem(
        "x", "split", ((TextKind.CAPTION, "a"), (TextKind.OCR, "b")), {Category.HATE: label}
    )
    return ScoredItem(
        item,
        {TextKind.CAPTION: {Category.HATE: top}, TextKind.OCR: {Category.HATE: 0.05}},
        {Category.HATE: combined},
        {(TextKind.CAPTION, TextKind.OCR): 0.3},
    )


def test_fit_learns_that_the_combined_score_carries_the_label() -> None:
    rows = [_scored(0.1 + 0.01 * (i % 5), 0.7 + 0.02 * (i % 7), 1) for i in range(40)]
    rows += [_scored(0.1 + 0.01 * (i % 5), 0.1 + 0.02 * (i % 7), 0) for i in range(40)]
    rows += [_scored(0.9, 0.9, 1)]  # above `below`: left out of the fit
    weights = fit_combination(rows, below=0.5)
    assert weights.combined > 1.0


def test_a_refit_with_new_weights_is_a_new_config_version() -> None:
    from crossguard.consistency.config import load_fusion_config
    from crossguard.models.fusion_eval import _next_version

    packaged = load_fusion_config()
    same = packaged.combination["default"]
    assert _next_version(packaged, same) == packaged.version
    moved = same.model_copy(update={"intercept": same.intercept + 0.5})
    assert _next_version(packaged, moved) == str(int(packaged.version) + 1)
