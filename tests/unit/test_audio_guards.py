from __future__ import annotations

import pytest

from crossguard.audio.guards import collapse_repetition, token_budget

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected", "looped"),
    [
        ("I will find you.", "I will find you.", False),
        ("no no no", "no no no", False),
        ("no, no, No. no! no", "no, no, No.", True),
        (
            "Thank you. Thank you. Thank you. Thank you. Thank you.",
            "Thank you. Thank you. Thank you.",
            True,
        ),
        (
            "He said go to the store go to the store go to the store go to the store now",
            "He said go to the store go to the store go to the store",
            True,
        ),
        ("", "", False),
    ],
)
def test_collapse_repetition(text: str, expected: str, looped: bool) -> None:
    assert collapse_repetition(text, max_repeats=3) == (expected, looped)


def test_token_budget() -> None:
    assert token_budget(10.0, 6.0) == 60
    assert token_budget(0.3, 6.0) == 8
    assert token_budget(2.1, 6.0, floor=1) == 13
