"""A classifier result that names unread parts (e.g. text in a language the text model cannot
read) becomes a missing signal of its modality in the decision, which the policy's fallback
escalates: Processor.process() with the classifier answered in process, no broker or servers."""

from __future__ import annotations

import pytest

from crossguard.core.results import ClassifierResult, Modality, Score, UnreadPart
from crossguard.core.taxonomy import Category
from crossguard.pipeline.fanout import Fanout
from crossguard.pipeline.metrics import PipelineMetrics
from crossguard.pipeline.process import Processor, default_fanout
from crossguard.pipeline.settings import PipelineSettings
from crossguard.pipeline.validate import ValidItem
from crossguard.policy import MissingSignal, Policy
from crossguard.v1 import content_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit


class ReadsEnglishOnly(Fanout):
    """The text classifier's answer for parts marked "de:": scored, but the part unread."""

    def __init__(self, settings: PipelineSettings) -> None:
        real = default_fanout(settings, PipelineMetrics())
        super().__init__(settings, real.clients, real.metrics)

    async def classify_one(
        self, valid: ValidItem, modality: Modality, policy: Policy
    ) -> ClassifierResult | MissingSignal:
        parts = valid.parts_by_modality[modality]
        unread = [
            UnreadPart(p.part_id, "unsupported_language", "de 0.99")
            for p in parts
            if p.text.startswith("de:")
        ]
        return ClassifierResult(
            modality,
            [Score(Category.VIOLENCE, 0.05, 0)],
            models=[("text", "1")],
            unread=unread,
        )


def item(cid: str, *texts: str) -> bytes:
    return content_pb2.ContentItem(
        id=cid,
        tenant="t",
        surface="comment",
        parts=[content_pb2.ContentPart(part_id=f"p{k}", text=t) for k, t in enumerate(texts)],
    ).SerializeToString()


@pytest.fixture
def processor() -> Processor:
    settings = PipelineSettings(text_endpoint="in-process:1")
    return Processor(settings, fanout=ReadsEnglishOnly(settings))


async def test_an_unread_part_is_a_missing_signal_that_escalates(processor: Processor) -> None:
    out = await processor.process(item("c1", "hello there", "de: Ich werde dich finden."))
    assert out.decision is not None
    (missing,) = out.decision.missing_signals
    assert (missing.modality, missing.reason, missing.fallback) == (
        taxonomy_pb2.MODALITY_TEXT,
        "unsupported_language",
        "escalate",
    )
    assert out.decision.action == taxonomy_pb2.ACTION_ESCALATE
    assert out.decision.escalation.rule == "missing_signal.escalate:text"
    assert any("text signal missing (unsupported_language)" in r for r in out.decision.reasons)


async def test_read_parts_alone_are_decided_by_their_scores(processor: Processor) -> None:
    out = await processor.process(item("c2", "hello there"))
    assert out.decision is not None
    assert not out.decision.missing_signals
    assert out.decision.action == taxonomy_pb2.ACTION_ALLOW
