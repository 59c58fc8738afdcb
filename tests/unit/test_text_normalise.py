"""Obfuscation normalisation (crossguard.text.normalise) on a small vocabulary."""

from __future__ import annotations

import pytest

from crossguard.text.normalise import Normaliser, vocabulary_from_tokenizer
from crossguard.text.textprep import sanitize

pytestmark = pytest.mark.unit

WORDS = (
    "i a you your yourself kill will find and are worthless piece of shit fucking bitch "
    "happy birthday to see the picnic thank thanks help hello friends flowers going shoot "
    "tomorrow now congratulations on job room people beds check in at team"
)


@pytest.fixture(scope="module")
def normalise() -> Normaliser:
    return Normaliser(frozenset(WORDS.split()))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("k i l l  y o u r s e l f", "kill  yourself"),
        ("k y s", "kill yourself"),
        ("k i l l y o u r s e l f", "kill yourself"),
        (
            "you are a w o r t h l e s s  p i e c e  o f  s h i t",
            "you are a worthless  piece  of  shit",
        ),
        ("1 w1ll f1nd y0u 4nd k1ll y0u", "i will find you and kill you"),
        ("k*ll yourself", "kill yourself"),
        ("k.i.l.l y.o.u.r.s.e.l.f", "kill yourself"),
        ("I will k-i-l-l you", "I will kill you"),
        ("you f*cking b!tch", "you fucking bitch"),
        ("kіll yоursеlf", "kill yourself"),  # Cyrillic і, о, е
        ("уоu аrе а wоrthlеss", "you are a worthless"),  # whole words of look-alikes
        ("I'm going to 🔪 you", "I'm going to stab you"),
        ("🔫 you tomorrow", "shoot you tomorrow"),
        ("a new 🔪 for the kitchen", "a new knife for the kitchen"),
        ("I lost my 🔫 again", "I lost my gun again"),
    ],
)
def test_evasions_are_undone(normalise: Normaliser, text: str, expected: str) -> None:
    assert normalise(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Meet at 4pm in room 101, 3 people, 2 beds.",
        "l33t h4x0r skills at the hackathon",
        "He said 'a' and 'I' twice.",
        "café naïve résumé",
        "Спасибо за ужин, до завтра.",
        "I hiked in the горах today",  # a real Russian word in English text stays
        "我会找到你",
        "© 2026 ACME, e.g. a list",
        "Thanks, see you at the picnic!",
    ],
)
def test_ordinary_text_is_left_alone(normalise: Normaliser, text: str) -> None:
    assert normalise(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("🔥🔥 you are amazing", "fire fire you are amazing"),
        ("Happy birthday 🎂🎉", "Happy birthday birthday cake party popper"),
    ],
)
def test_emoji_become_their_names(normalise: Normaliser, text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_zero_width_and_styled_letters_are_handled_by_sanitize_first(normalise: Normaliser) -> None:
    zero_width = "k\u200bi\u200bl\u200bl yourself"
    styled = "𝐤𝐢𝐥𝐥 𝐲𝐨𝐮𝐫𝐬𝐞𝐥𝐟"
    assert normalise(sanitize(zero_width).text) == "kill yourself"
    assert normalise(sanitize(styled).text) == "kill yourself"


def test_vocabulary_keeps_whole_lower_case_words() -> None:
    tokenizer = '{"model": {"vocab": {"kill": 0, "##ing": 1, "[CLS]": 2, "Paris": 3, "3d": 4}}}'
    assert vocabulary_from_tokenizer(tokenizer) == frozenset({"kill"})
