"""The text classifier with real weights on the contrastive development cases
(crossguard.models.devcases): each family it is meant to handle, and languages it cannot read.

Rates are asserted per family with the margins measured by `crossguard eval text` (dev split,
never trained on), so a regression in normalisation, language identification or the heads
fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossguard.core.model_repository import ModelRepository
from crossguard.models.devcases import load_devcases
from crossguard.text.language import UNSUPPORTED_LANGUAGE
from crossguard.text.service import TextClassifier

from .text_models import dev_cases, family_rates, loaded_text_model, outcomes, text_classifier

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def model(model_repository: ModelRepository) -> Iterator[Any]:
    with loaded_text_model(model_repository) as m:
        yield m


@pytest.fixture
async def classifier(model: Any) -> AsyncIterator[TextClassifier]:
    async with text_classifier(model) as c:
        yield c


@pytest.mark.parametrize(
    "family", ["obf_spaced", "obf_leet", "obf_symbols", "obf_homoglyph", "obf_zero_width"]
)
async def test_obfuscated_threats_are_caught_and_obfuscated_greetings_are_not(
    classifier: TextClassifier, model: Any, family: str
) -> None:
    got = await outcomes(classifier, model, dev_cases(family))
    assert got
    wrong = [(c.text, flagged) for c, flagged, _ in got if flagged != bool(c.label)]
    assert wrong == []


async def test_context_families_stay_within_the_measured_margins(
    classifier: TextClassifier, model: Any
) -> None:
    got = await outcomes(
        classifier, model, dev_cases("identity_benign", "identity_hate", "idiom", "counter_speech")
    )
    assert [c.text for c, _, unread in got if unread] == []
    rate = family_rates(got)
    # Measured (int8, heads' own thresholds): 0.98, 1.00, 0.83, 0.72.
    assert rate["identity_benign"] >= 0.9
    assert rate["identity_hate"] >= 0.9
    assert rate["idiom"] >= 0.7
    assert rate["counter_speech"] >= 0.6


async def test_kill_the_process_is_not_flagged_and_a_threat_is(
    classifier: TextClassifier, model: Any
) -> None:
    cases = [
        c
        for c in load_devcases()
        if c.text
        in (
            "Kill the process with kill -9 if it hangs again.",
            "I know where you live and I will burn your house down.",
        )
    ]
    got = {c.text: flagged for c, flagged, _ in await outcomes(classifier, model, cases)}
    assert got == {
        "Kill the process with kill -9 if it hangs again.": False,
        "I know where you live and I will burn your house down.": True,
    }


async def test_every_non_english_case_is_marked_unsupported(
    classifier: TextClassifier, model: Any
) -> None:
    got = await outcomes(classifier, model, dev_cases("non_english"))
    assert {c.lang for c, _, _ in got} >= {"es", "fr", "de", "pt", "hi", "ar", "zh", "ru"}
    assert [c.text for c, _, unread in got if not unread] == []


async def test_english_parts_next_to_a_foreign_one_name_only_that_part(
    classifier: TextClassifier,
) -> None:
    result = await classifier.classify(
        "mixed",
        [
            ("en", "Thanks for dinner, see you tomorrow!"),
            ("de", "Ich werde dich finden und umbringen."),
        ],
    )
    assert [(u.part_id, u.reason) for u in result.unread] == [("de", UNSUPPORTED_LANGUAGE)]
    assert result.unread[0].detail.startswith("de ")
