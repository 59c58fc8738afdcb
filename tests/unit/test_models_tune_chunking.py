"""The chunking study cuts texts exactly as the service would for each candidate limit."""

from __future__ import annotations

import pytest

from crossguard.models.tune_chunking import pieces

pytestmark = pytest.mark.unit

LONG = " ".join(f"Sentence number {i} says something harmless." for i in range(40))


def test_a_text_within_the_limits_is_one_piece() -> None:
    assert pieces("I will find you.", (128, 768)) == ["I will find you."]
    assert pieces(LONG, (1_000_000, 1_000_000)) == [LONG]


def test_a_text_over_either_limit_is_cut_into_pieces_that_cover_it() -> None:
    by_units = pieces(LONG, (64, 1_000_000))
    by_chars = pieces(LONG, (1_000_000, 400))
    for cut in (by_units, by_chars):
        assert len(cut) > 1
        assert cut[0].startswith("Sentence number 0") and cut[-1].endswith("harmless.")
    assert all(len(p) <= 400 for p in by_chars)
