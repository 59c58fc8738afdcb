"""Language identification (crossguard.text.language) with py3langid's shipped model, and
unread parts carried through the classifier result and its proto."""

from __future__ import annotations

import pytest

from crossguard.core.proto_convert import result_from_proto, result_to_proto
from crossguard.core.results import ClassifierResult, Modality, UnreadPart
from crossguard.text.language import UNSUPPORTED_LANGUAGE, LanguageIdentifier

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def english_only() -> LanguageIdentifier:
    identifier = LanguageIdentifier(["en"])
    identifier.load()
    return identifier


@pytest.mark.parametrize(
    "text",
    [
        "I will find you and kill you.",
        "Thanks for dinner, see you tomorrow at the picnic!",
        "lol",  # too short to tell: read as English
        "kys",
        "u r dumb",
        "12345 !!!",
    ],
)
def test_english_and_short_texts_are_supported(english_only: LanguageIdentifier, text: str) -> None:
    assert english_only.identify(text).supported


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Ich habe den Prozess beendet und den Rechner neu gestartet.", "de"),
        ("Te voy a encontrar y te voy a matar.", "es"),
        ("我会找到你并杀了你。", "zh"),
        ("سأجدك وأقتلك.", "ar"),
        ("मैं तुम्हें ढूंढ कर मार डालूंगा।", "hi"),
    ],
)
def test_other_languages_are_unsupported(
    english_only: LanguageIdentifier, text: str, language: str
) -> None:
    verdict = english_only.identify(text)
    assert (verdict.language, verdict.supported) == (language, False)


def test_a_supported_language_is_read() -> None:
    identifier = LanguageIdentifier(["en", "de"])
    identifier.load()
    assert identifier.identify("Ich habe den Prozess beendet und neu gestartet.").supported


def test_identify_before_load_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        LanguageIdentifier(["en"]).identify("hello there")


def test_unread_parts_survive_the_proto() -> None:
    result = ClassifierResult(
        Modality.TEXT, [], unread=[UnreadPart("p1", UNSUPPORTED_LANGUAGE, "de 1.00")]
    )
    assert result_from_proto(result_to_proto(result)).unread == result.unread
