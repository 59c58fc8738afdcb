"""The real text model and an in-process text classifier over it, for the text-quality tests
(module-scoped model, one classifier per test), and the development cases' outcomes per family."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from crossguard.core.model_repository import ModelRepository
from crossguard.core.taxonomy import Category
from crossguard.models.devcases import DevCase, load_devcases
from crossguard.text.language import UNSUPPORTED_LANGUAGE
from crossguard.text.service import TextClassifier
from crossguard.text.settings import TextServiceSettings


@contextmanager
def loaded_text_model(repository: ModelRepository, **options: Any) -> Iterator[Any]:
    from crossguard.text.model import TextModel

    model = TextModel(repository, **options)
    model.load()
    try:
        yield model
    finally:
        model.close()


@asynccontextmanager
async def text_classifier(model: Any) -> AsyncIterator[TextClassifier]:
    """Without occlusion evidence, sharing (not owning) the module's model."""
    classifier = TextClassifier(
        model,
        TextServiceSettings(evidence_passes=0),
        owns_model=False,
        language_of=model.identify_language,
    )
    await classifier.start()
    try:
        yield classifier
    finally:
        await classifier.close()


async def outcomes(
    classifier: TextClassifier, model: Any, cases: list[DevCase]
) -> list[tuple[DevCase, bool, bool]]:
    """(case, flagged by a category at its threshold, marked unsupported_language)."""
    cuts = model.thresholds
    out = []
    for k, case in enumerate(cases):
        result = await classifier.classify(f"dev-{k}", [("text", case.text)])
        flagged = any(
            s.score >= cuts[s.category] for s in result.scores if s.category != Category.PROFANITY
        )
        unread = [u.reason for u in result.unread] == [UNSUPPORTED_LANGUAGE]
        out.append((case, flagged, unread))
    return out


def dev_cases(*families: str) -> list[DevCase]:
    return [c for c in load_devcases() if c.split == "dev" and c.family in families]


def family_rates(got: list[tuple[DevCase, bool, bool]]) -> dict[str, float]:
    """Per family, the share of its cases judged right (flagged exactly when harmful)."""
    by_family: dict[str, list[bool]] = {}
    for case, flagged, _ in got:
        by_family.setdefault(case.family, []).append(flagged == bool(case.label))
    return {f: sum(v) / len(v) for f, v in by_family.items()}
