"""Text in a language the text model cannot read, through the running stack (real broker, real
text service with real weights, real worker): the decision names the missing text signal
(unsupported_language) and escalates it by the policy's fallback; English next to it does not.
With the multilingual model (CROSSGUARD_TEXT_MULTILINGUAL, on by default) its languages are
decided on their scores and the others still escalated."""

from __future__ import annotations

import pytest

from crossguard.core.settings import KafkaSettings
from crossguard.pipeline.io import collect_decisions, publish_items
from crossguard.v1 import content_pb2, taxonomy_pb2

from .conftest import ServiceFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def item(cid: str, text: str) -> content_pb2.ContentItem:
    return content_pb2.ContentItem(
        id=cid,
        tenant="acme",
        surface="comment",
        author_id="u-" + cid,
        locale="en",
        parts=[content_pb2.ContentPart(part_id="body", text=text)],
    )


async def test_unreadable_languages_are_escalated_never_silently_allowed(
    kafka: KafkaSettings, start_text: ServiceFactory, start_worker: ServiceFactory
) -> None:
    # The multilingual model off: German, Chinese and Spanish are unreadable too.
    text = start_text(CROSSGUARD_TEXT_MULTILINGUAL="false")
    start_worker(CROSSGUARD_TEXT_ENDPOINT=f"127.0.0.1:{text.port}")
    items = [
        item("lang-de", "Ich habe den Prozess beendet und den Rechner neu gestartet."),
        item("lang-zh", "谢谢你的晚餐，明天见。"),
        item("lang-es", "Te voy a encontrar y te voy a matar."),
        item("lang-en", "Thanks for dinner, see you tomorrow at the picnic!"),
    ]
    await publish_items(kafka.bootstrap_servers, items, kafka=kafka)
    got = await collect_decisions(
        kafka.bootstrap_servers, [i.id for i in items], kafka=kafka, timeout_s=90
    )

    for cid in ("lang-de", "lang-zh", "lang-es"):
        d = got[cid]
        assert [(m.modality, m.reason, m.fallback) for m in d.missing_signals] == [
            (taxonomy_pb2.MODALITY_TEXT, "unsupported_language", "escalate")
        ], d
        assert d.action in (taxonomy_pb2.ACTION_ESCALATE, taxonomy_pb2.ACTION_BLOCK)
        assert d.escalation.escalated
        assert d.categories, "the scores are still recorded"
    english = got["lang-en"]
    assert not english.missing_signals
    assert english.action == taxonomy_pb2.ACTION_ALLOW


async def test_with_the_multilingual_model_its_languages_are_decided_and_others_escalated(
    kafka: KafkaSettings, start_text: ServiceFactory, start_worker: ServiceFactory
) -> None:
    text = start_text()  # the multilingual model is on by default
    start_worker(CROSSGUARD_TEXT_ENDPOINT=f"127.0.0.1:{text.port}")
    items = [
        item("ml-es-threat", "Te voy a encontrar y te voy a matar."),
        item("ml-fr-benign", "Merci pour les fleurs, à demain au pique-nique."),
        item("ml-hi", "यह चुटकुला बहुत मज़ेदार था, मैं बहुत हँसा।"),
    ]
    await publish_items(kafka.bootstrap_servers, items, kafka=kafka)
    got = await collect_decisions(
        kafka.bootstrap_servers, [i.id for i in items], kafka=kafka, timeout_s=90
    )

    threat, benign, hindi = got["ml-es-threat"], got["ml-fr-benign"], got["ml-hi"]
    assert not threat.missing_signals and not benign.missing_signals
    assert threat.action in (taxonomy_pb2.ACTION_ESCALATE, taxonomy_pb2.ACTION_BLOCK), threat
    assert benign.action == taxonomy_pb2.ACTION_ALLOW, benign
    assert [(m.reason, m.fallback) for m in hindi.missing_signals] == [
        ("unsupported_language", "escalate")
    ]
    assert hindi.action in (taxonomy_pb2.ACTION_ESCALATE, taxonomy_pb2.ACTION_BLOCK)
