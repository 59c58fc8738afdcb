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
            "He said go to the store go to the store go to the store go to the store",
            "He said go to the store go to the store go to the store",
            True,
        ),
        ("", "", False),
    ],
)
def test_collapse_repetition(text: str, expected: str, looped: bool) -> None:
    assert collapse_repetition(text, max_repeats=3) == (expected, looped, looped)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A list of mentions read aloud, then the message: the message is kept.
        (
            "At user at user at user at user yo fat ugly idiot",
            "At user at user at user yo fat ugly idiot",
        ),
        # Repeating a phrase does not hide what follows it; every run is cut.
        ("la la la la la I will kill you", "la la la I will kill you"),
        (
            "go go go go now stop stop stop stop stop then",
            "go go go now stop stop stop then",
        ),
    ],
)
def test_words_after_a_repeated_run_are_kept(text: str, expected: str) -> None:
    assert collapse_repetition(text, max_repeats=3) == (expected, True, False)


def test_a_run_to_the_end_after_a_cut_one_is_a_loop() -> None:
    text = "la la la la hello no no no no no"
    assert collapse_repetition(text, max_repeats=3) == ("la la la hello no no no", True, True)


def test_token_budget() -> None:
    assert token_budget(10.0, 6.0) == 60
    assert token_budget(0.3, 6.0) == 8
    assert token_budget(2.1, 6.0, floor=1) == 13
