"""Consistency signals and fused decisions with the real text models: mixed items (a caption +
text in an image; a caption + spoken words) through the consistency server, and through the
pipeline worker on the real broker.

The vision (OCR) and audio (ASR) services' part here is played by `DerivedTextClassifier` (their
own tests read real images and speech), which takes the text an OCR or ASR model would read from the
media part's bytes (the test writes the text there), scores it with the real text service, and
answers as the image or audio modality with derived-text evidence, the way those services answer.
Only the reading step is skipped; every score is the real text model's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from crossguard.consistency.config import load_fusion_config
from crossguard.consistency.server import build_server
from crossguard.consistency.settings import ConsistencySettings
from crossguard.core.grpc_server import GrpcServer
from crossguard.core.settings import GrpcServerSettings, KafkaSettings, ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.pipeline.io import collect_decisions, publish_items
from crossguard.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    consistency_pb2,
    consistency_pb2_grpc,
    content_pb2,
    taxonomy_pb2,
)

from .conftest import ServiceFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

CAPTION = "Had a great weekend with friends at the lake"
HATEFUL_OCR = "People like you are subhuman garbage and should be wiped out."
CALM_OCR = "Happy weekend at the lake with friends"
# Benign parts, harmful combination: an item of the development set's fit part (each part alone
# is allowed); fusion raises harmful_combination/hate on it and the framing head
# harmful_framing/hate, the signal the default policy escalates it on (docs/fusion.md).
TURN_CAPTION = "Vermin, everywhere you look"
TURN_OCR = "Asian workers leaving the factory"
THREAT = "I know where you live and I will hurt you and your family."
# The framing head (framing-head/1): a caption that frames the people the image text names,
# and the same caption over the pests it fits literally. Neither text is in the head's
# training lists or in the development set.
FRAME_CAPTION = "Call pest control already"
FRAME_PEOPLE = "Brazilian students at the welcome evening"
FRAME_PESTS = "Mice droppings in the cupboard"


class DerivedTextClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """Plays OCR or ASR: the media bytes are the text read; the real text service scores it."""

    def __init__(self, modality: taxonomy_pb2.Modality.ValueType, text_endpoint: str) -> None:
        self.modality = modality
        self.channel = grpc.aio.insecure_channel(text_endpoint)
        self.text = classifier_pb2_grpc.ClassifierServiceStub(self.channel)

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: object
    ) -> classifier_pb2.ClassifyResponse:
        parts = [p for p in request.parts if p.WhichOneof("kind") == "media"]
        read = [(p.part_id, p.media.inline_data.decode("utf-8")) for p in parts]
        scored = await self.text.Classify(
            classifier_pb2.ClassifyRequest(
                content_id=request.content_id,
                parts=[content_pb2.ContentPart(part_id=pid, text=t) for pid, t in read],
            )
        )
        resp = classifier_pb2.ClassifyResponse(
            modality=self.modality,
            scores=scored.scores,
            models=[
                *scored.models,
                classifier_pb2.ModelInfo(name="derived-text-test", version="1"),
            ],
        )
        top = max(scored.scores, key=lambda s: s.score)
        for pid, t in read:
            e = resp.evidence.add(part_id=pid, category=top.category, weight=top.score)
            e.derived_text = t
            if self.modality == taxonomy_pb2.MODALITY_AUDIO:
                e.time_range.CopyFrom(classifier_pb2.AudioRange(start_ms=0, end_ms=3000))
            else:
                e.region.CopyFrom(classifier_pb2.ImageRegion(x=0, y=0, width=200, height=40))
        return resp

    async def ClassifyBatch(
        self, request: classifier_pb2.ClassifyBatchRequest, context: object
    ) -> classifier_pb2.ClassifyBatchResponse:
        """As the serving template answers it (the pipeline's coalescing client sends these)."""
        out = classifier_pb2.ClassifyBatchResponse()
        for r in request.requests:
            out.results.add(content_id=r.content_id, response=await self.Classify(r, context))
        return out


async def _serve(servicer: DerivedTextClassifier) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def _media(text: str, mime: str) -> content_pb2.Media:
    return content_pb2.Media(mime_type=mime, inline_data=text.encode("utf-8"))


def mixed_item(cid: str, caption: str, part: str, text: str, mime: str) -> content_pb2.ContentItem:
    return content_pb2.ContentItem(
        id=cid,
        tenant="acme",
        surface="comment",
        locale="en",
        parts=[
            content_pb2.ContentPart(part_id="caption", text=caption),
            content_pb2.ContentPart(part_id=part, media=_media(text, mime)),
        ],
    )


@pytest.fixture
async def stack(
    start_text: ServiceFactory, model_repository: object
) -> AsyncIterator[tuple[str, str, str, GrpcServer]]:
    """(text, vision-like, audio-like endpoints, consistency server) with the real text
    service and the consistency server's real encoder and combination scoring."""
    text = start_text()
    text_endpoint = f"127.0.0.1:{text.port}"
    vision, vision_endpoint = await _serve(
        DerivedTextClassifier(taxonomy_pb2.MODALITY_IMAGE, text_endpoint)
    )
    audio, audio_endpoint = await _serve(
        DerivedTextClassifier(taxonomy_pb2.MODALITY_AUDIO, text_endpoint)
    )
    consistency = build_server(
        GrpcServerSettings(port=0, grace_seconds=0.5),
        ConsistencySettings(text_endpoint=text_endpoint, text_deadline_ms=10_000),
        ModelSettings(
            model_repository=model_repository.root,  # type: ignore[attr-defined]
            onnx_providers="CPUExecutionProvider",
            onnx_intra_op_threads=1,
        ),
    )
    await consistency.start()
    try:
        yield text_endpoint, vision_endpoint, audio_endpoint, consistency
    finally:
        await consistency.stop()
        await vision.stop(None)
        await audio.stop(None)


async def _classify(endpoint: str, item: content_pb2.ContentItem, kind: str) -> object:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        parts = [p for p in item.parts if p.WhichOneof("kind") == kind]
        return await stub.Classify(classifier_pb2.ClassifyRequest(content_id=item.id, parts=parts))


async def test_consistency_server_signals_and_fusion_on_mixed_items(
    stack: tuple[str, str, str, GrpcServer],
) -> None:
    text_endpoint, vision_endpoint, audio_endpoint, consistency = stack
    meme = mixed_item("m1", CAPTION, "image-0", HATEFUL_OCR, "image/png")
    voice = mixed_item("v1", CAPTION, "audio-0", THREAT, "audio/wav")
    calm = mixed_item("c1", CAPTION, "image-0", CALM_OCR, "image/png")
    turn = mixed_item("t1", TURN_CAPTION, "image-0", TURN_OCR, "image/png")
    framed = mixed_item("f1", FRAME_CAPTION, "image-0", FRAME_PEOPLE, "image/png")
    pests = mixed_item("f2", FRAME_CAPTION, "image-0", FRAME_PESTS, "image/png")
    answers = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{consistency.port}") as channel:
        stub = consistency_pb2_grpc.ConsistencyServiceStub(channel)
        for item, endpoint in (
            (meme, vision_endpoint),
            (voice, audio_endpoint),
            (calm, vision_endpoint),
            (turn, vision_endpoint),
            (framed, vision_endpoint),
            (pests, vision_endpoint),
        ):
            responses = [
                await _classify(text_endpoint, item, "text"),
                await _classify(endpoint, item, "media"),
            ]
            answers[item.id] = await stub.Check(
                consistency_pb2.CheckRequest(item=item, responses=responses)  # type: ignore[arg-type]
            )

    def signals(
        resp: consistency_pb2.CheckResponse,
    ) -> dict[str, consistency_pb2.ConsistencySignal]:
        return {s.name: s for s in resp.signals}

    def fused(resp: consistency_pb2.CheckResponse) -> dict[int, consistency_pb2.FusedCategory]:
        return {f.category: f for f in resp.fused}

    # A harmless caption over hateful text in the image: the image flags, the caption does not.
    m = answers["m1"]
    hate = fused(m)[Category.HATE.proto]
    assert hate.score > 0.5 and hate.explanation.startswith(f"hate {hate.score:.2f} from image")
    dis = signals(m)["modality_disagreement/hate"]
    assert dis.value > 0.3 and list(dis.part_ids) == ["caption", "image-0"]
    agree = signals(m)["text_agreement/caption~ocr"]
    assert 0.0 <= agree.value < 0.5 and agree.detail.startswith("caption vs text in the image")
    assert m.explanation and {(x.name, x.version) for x in m.models} >= {
        ("context-fusion", load_fusion_config().version),  # the packaged defaults
        ("minilm-l6-encoder", "3"),
    }
    # A benign caption with a threatening voice-over.
    v = answers["v1"]
    top = max(v.fused, key=lambda f: f.score)
    assert top.score > 0.5 and " from audio" in top.explanation
    assert "text_agreement/caption~transcript" in signals(v)
    assert any(n.startswith("modality_disagreement/") for n in signals(v))
    # Both parts benign: nothing flags, sources agree.
    c = answers["c1"]
    assert max(f.score for f in c.fused if f.category != Category.PROFANITY.proto) < 0.4
    assert not [n for n in signals(c) if not n.startswith("text_agreement/")]
    assert signals(c)["text_agreement/caption~ocr"].value > agree.value  # lake ~ lake
    # A caption that turns the image's meaning: each part alone is allowed, read together
    # they are hateful; fusion lifts hate and raises the combination signal.
    t = answers["t1"]
    combo = signals(t)["harmful_combination/hate"]
    assert combo.value >= 0.2 and list(combo.part_ids) == ["caption", "image-0"]
    hate = fused(t)[Category.HATE.proto]
    assert "read together score" in hate.explanation and hate.uncertainty > 0.1
    # A caption that frames the people named in the image as pests: the framing head's signal,
    # naming which part framed which; the same caption over actual pests raises nothing.
    f = answers["f1"]
    frame = signals(f)["harmful_framing/hate"]
    assert frame.value >= 0.3 and list(frame.part_ids) == ["caption", "image-0"]
    assert frame.detail.startswith("the caption frames the people the text in the image names")
    assert frame.detail in f.explanation
    assert ("framing-head", "1") in {(x.name, x.version) for x in f.models}
    assert not [n for n in signals(answers["f2"]) if n.startswith("harmful_framing/")]


async def test_pipeline_decides_on_fused_scores_with_explanations(
    kafka: KafkaSettings,
    stack: tuple[str, str, str, GrpcServer],
    start_worker: ServiceFactory,
) -> None:
    text_endpoint, vision_endpoint, audio_endpoint, consistency = stack
    start_worker(
        CROSSGUARD_TEXT_ENDPOINT=text_endpoint,
        CROSSGUARD_VISION_ENDPOINT=vision_endpoint,
        CROSSGUARD_AUDIO_ENDPOINT=audio_endpoint,
        CROSSGUARD_CONSISTENCY_ENDPOINT=f"127.0.0.1:{consistency.port}",
        CROSSGUARD_CONSISTENCY_DEADLINE_MS="10000",
    )
    items = [
        mixed_item("p-meme", CAPTION, "image-0", HATEFUL_OCR, "image/png"),
        mixed_item("p-voice", CAPTION, "audio-0", THREAT, "audio/wav"),
        mixed_item("p-calm", CAPTION, "image-0", CALM_OCR, "image/png"),
        mixed_item("p-turn", TURN_CAPTION, "image-0", TURN_OCR, "image/png"),
        mixed_item("p-frame", FRAME_CAPTION, "image-0", FRAME_PEOPLE, "image/png"),
        mixed_item("p-pests", FRAME_CAPTION, "image-0", FRAME_PESTS, "image/png"),
    ]
    await publish_items(kafka.bootstrap_servers, items, kafka=kafka)
    got = await collect_decisions(
        kafka.bootstrap_servers, [i.id for i in items], kafka=kafka, timeout_s=90
    )
    meme, voice, calm, turn = got["p-meme"], got["p-voice"], got["p-calm"], got["p-turn"]
    # The fusion's uncertainty reaches the policy: image hate vs a benign caption.
    assert "uncertainty.estimate:hate" in {h.rule for h in meme.rule_hits}
    assert not [s for s in meme.consistency if s.name.endswith("/profanity")]
    for d in (meme, voice):
        assert d.action != taxonomy_pb2.ACTION_ALLOW
        assert not d.missing_signals
        assert any(r.startswith("fusion: ") for r in d.reasons)
        assert any(s.name.startswith("modality_disagreement/") for s in d.consistency)
        assert d.statement_of_reasons.text  # the policy's statement of reasons
    assert "from image" in next(r for r in meme.reasons if r.startswith("fusion: "))
    assert "from audio" in next(r for r in voice.reasons if r.startswith("fusion: "))
    assert calm.action == taxonomy_pb2.ACTION_ALLOW
    assert {s.name for s in calm.consistency} == {"text_agreement/caption~ocr"}
    fusion = load_fusion_config()  # the packaged defaults the pipeline's consistency server runs
    assert {(m.name, m.version) for m in meme.models} >= {("context-fusion", fusion.version)}
    # Benign parts, harmful combination: both signals are raised; the policy escalates on the
    # framing ("Vermin, everywhere you look" over a group), the combination estimate staying
    # under its cut of 0.65.
    assert turn.action == taxonomy_pb2.ACTION_ESCALATE
    assert any(s.name == "harmful_combination/hate" for s in turn.consistency)
    assert any(h.rule == "inconsistency.escalate:harmful_framing/hate" for h in turn.rule_hits)
    assert turn.escalation.escalated and not turn.final
    # One part frames the people the other names: escalated by the policy's harmful_framing
    # rule; the literal use is allowed.
    frame, pests = got["p-frame"], got["p-pests"]
    assert frame.action == taxonomy_pb2.ACTION_ESCALATE
    assert any(h.rule == "inconsistency.escalate:harmful_framing/hate" for h in frame.rule_hits)
    assert pests.action == taxonomy_pb2.ACTION_ALLOW
