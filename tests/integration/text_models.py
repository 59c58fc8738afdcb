"""The real text model and an in-process text classifier over it, for the text-quality tests
(module-scoped model, one classifier per test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from crossguard.core.model_repository import ModelRepository
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
