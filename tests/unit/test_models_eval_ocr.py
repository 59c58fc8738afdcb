"""The OCR eval's bookkeeping (text choice, halves, paired bootstrap, table) and its rendering
choices (pixel-width wrap, characters the font cannot draw), by plain calls."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import ImageFont

from crossguard.core.taxonomy import Category
from crossguard.models.data import Example, split_of
from crossguard.models.eval_ocr import (
    OcrRow,
    auprc_table,
    choose_texts,
    paired_bootstrap,
    part_of,
    read_rows,
    write_rows,
)
from crossguard.models.eval_vision import FONTS, drawable, render, wrap_pixels

pytestmark = pytest.mark.unit


def _validation_texts(prefix: str, n: int) -> list[str]:
    out, i = [], 0
    while len(out) < n:
        if split_of(f"{prefix}{i}") == "validation":
            out.append(f"{prefix}{i}")
        i += 1
    return out


def test_choice_is_openai_first_then_alternating_davidson_and_deterministic() -> None:
    openai = [
        Example(t, {Category.SEXUAL: i % 2}, "openai")
        for i, t in enumerate(_validation_texts("o", 4))
    ]
    hate = [Example(t, {Category.HATE: 1}, "davidson:0") for t in _validation_texts("h", 3)]
    other = [Example(t, {Category.HATE: 0}, "davidson:2") for t in _validation_texts("n", 3)]
    train = [Example(t, {Category.HATE: 1}, "openai") for t in ["x0", "x1", "x2"]]
    train = [e for e in train if split_of(e.text) == "train"]
    examples = [*other, *train, *hate, *openai]
    chosen = choose_texts(8, examples)
    assert [e.source for e in chosen[:4]] == ["openai"] * 4
    assert [e.labels[Category.HATE] for e in chosen[4:]] == [1, 0, 1, 0]
    assert chosen == choose_texts(8, list(reversed(examples)))
    assert {part_of(e.text) for e in chosen} <= {"choose", "report"}


def test_paired_bootstrap_interval_covers_the_difference_and_is_zero_for_equal_scores() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(120) < 0.3).astype(np.int64)
    a = y * 0.6 + rng.random(120) * 0.5
    b = a + rng.normal(0, 0.15, 120)
    lo, hi = paired_bootstrap(y, a, b, 300)
    assert lo < hi
    from crossguard.models.evaluate import average_precision

    assert lo <= average_precision(y, b) - average_precision(y, a) <= hi
    assert paired_bootstrap(y, a, a.copy(), 50) == (0.0, 0.0)


def _row(key: str, part: str, label: int, direct: float, ocr: float) -> OcrRow:
    return OcrRow(
        key,
        "openai",
        part,
        {"sexual": label},
        "t",
        "t",
        1.0,  # type: ignore[arg-type]
        {"sexual": direct},
        {"sexual": ocr},
    )


def test_table_has_both_halves_and_all_and_rows_round_trip(tmp_path: object) -> None:
    rows = [
        _row(f"k{i}", "choose" if i % 2 else "report", int(i % 3 == 0), i / 20, i / 25)
        for i in range(20)
    ]
    table = auprc_table(rows, resamples=20)
    assert {(r.part, r.category) for r in table} == {
        (p, c) for p in ("choose", "report", "all") for c in ("any", "sexual")
    }
    assert next(r for r in table if r.part == "all").n == 20
    from pathlib import Path

    path = Path(str(tmp_path)) / "rows.jsonl"
    write_rows(path, rows)
    assert read_rows(path) == rows


def test_wrap_keeps_every_line_inside_the_width_and_every_word() -> None:
    font = ImageFont.truetype(FONTS[5], 30)  # monospaced: the widest
    text = "the quick brown fox jumps over the lazy dog " * 6 + "x" * 80
    lines = wrap_pixels(text, font, 400)
    assert all(font.getlength(line) <= 400 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_characters_the_font_cannot_draw_are_left_out() -> None:
    font = ImageFont.truetype(FONTS[0], 24)
    assert (
        drawable("so tired 🤷\u200d♀\ufe0f of it\u200b’s café", font) == "so tired ♀ of it’s café"
    )
    drawn = render("hello 👇 there", np.random.default_rng(0))
    assert drawn.text == "hello there"
    assert drawn.image.width == 720
