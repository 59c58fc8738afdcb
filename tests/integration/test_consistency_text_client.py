"""The consistency service's combination scoring against the real text service, through the
shared client (core.grpc_channels): concurrent checks' combined texts go out as ClassifyBatch
calls; a refusal (INVALID_ARGUMENT: the texts together are over the text service's limit) skips
the combination with an explanation; an unreachable service is NotReady, as before."""

from __future__ import annotations

import asyncio

import pytest

from crossguard.consistency.server import build_checker
from crossguard.consistency.service import CheckInput, ConsistencyChecker
from crossguard.consistency.settings import ConsistencySettings
from crossguard.consistency.text_client import TextServiceScorer
from crossguard.core.broker import free_port
from crossguard.core.results import (
    ClassifierResult,
    DerivedTextEvidence,
    ImageRegion,
    Modality,
    Score,
)
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category

from .conftest import ServiceFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TEXT_LIMIT = 300  # the text service's CROSSGUARD_TEXT_MAX_PART_CHARS here


def checker_for(endpoint: str, **kw: object) -> tuple[ConsistencyChecker, TextServiceScorer]:
    settings = ConsistencySettings(
        text_endpoint=endpoint,
        semantic_agreement=False,  # only the combination check runs
        **kw,  # type: ignore[arg-type]
    )
    checker, _, combiner = build_checker(settings, ModelSettings(), 4 << 20)
    assert combiner is not None
    return checker, combiner


def item(cid: str, caption: str, ocr: str) -> CheckInput:
    image = ClassifierResult(
        Modality.IMAGE,
        [Score(Category.HATE, 0.1, 0)],
        evidence=[DerivedTextEvidence("img", Category.HATE, 0.1, ocr, ImageRegion(0, 0, 9, 9))],
    )
    return CheckInput(cid, [("caption", caption)], [image], present=[Modality.IMAGE])


async def test_combined_texts_batched_refusal_explained(start_text: ServiceFactory) -> None:
    text = start_text(
        CROSSGUARD_TEXT_MAX_PART_CHARS=str(TEXT_LIMIT),
        CROSSGUARD_TEXT_MAX_TOTAL_CHARS=str(TEXT_LIMIT),
    )
    endpoint = f"127.0.0.1:{text.port}"
    checker, combiner = checker_for(
        endpoint, text_batch_max_items=4, text_batch_max_delay_ms=200, text_deadline_ms=30_000
    )
    try:
        outs = await asyncio.gather(
            *(
                checker.check(item(f"c{i}", "Not human, not welcome", f"Refugees at pier {i}"))
                for i in range(4)
            )
        )
        assert not [o.explanation for o in outs if "skipped" in o.explanation]
        batching = combiner.channels.classifier(endpoint, combiner.retries)
        assert (batching.batches, batching.items) == (1, 4)  # type: ignore[union-attr]

        # Each view is within the checker's own limit; together over the text service's.
        out = await checker.check(item("long", "a caption " * 20, "text in the image " * 10))
        assert "combination: the text service refused the item's texts" in out.explanation
        assert "CROSSGUARD_TEXT_MAX_PART_CHARS" in out.explanation
        assert not [s for s in out.signals if s.name.startswith("harmful_combination")]
        assert out.fused  # the item is still fused, without the combination
    finally:
        await checker.close()
        await combiner.close()


async def test_unreachable_text_service_is_not_ready() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    checker, combiner = checker_for(endpoint, text_retries=0, text_deadline_ms=2000)
    try:
        out = await checker.check(item("c", "a caption", "text in the image"))
        assert f"combination: text service {endpoint}: UNAVAILABLE" in out.explanation
    finally:
        await checker.close()
        await combiner.close()
