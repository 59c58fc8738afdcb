"""`python -m crossguard.vision` as a real process on a random port, with a real text service
for OCR text and a hash bank in SQLite: health, a meme over Classify and ClassifyStream, the
evidence in the response, and bad images answered with INVALID_ARGUMENT and a clear message."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image, ImageDraw, ImageFont

from crossguard.core.model_repository import ModelRepository
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.results import DerivedTextEvidence, HashMatchEvidence
from crossguard.core.serving.servicer import SERVICE_NAME
from crossguard.core.taxonomy import Category
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2

if TYPE_CHECKING:
    from tests.integration.conftest import GrpcServiceFactory, ServiceFactory

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def meme_png(text: str) -> bytes:
    img = Image.new("RGB", (640, 240), (30, 90, 160))
    ImageDraw.Draw(img).text(
        (20, 90),
        text,
        font=ImageFont.truetype(FONT, 36),
        fill="white",
        stroke_width=3,
        stroke_fill="black",
    )
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def image_request(content_id: str, data: bytes, mime: str) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        content_id=content_id,
        parts=[
            content_pb2.ContentPart(
                part_id="img", media=content_pb2.Media(mime_type=mime, inline_data=data)
            )
        ],
    )


async def test_vision_server_end_to_end(
    start_text: ServiceFactory,
    start_grpc: GrpcServiceFactory,
    model_repository: ModelRepository,
    tmp_path: Path,
) -> None:
    from crossguard.vision.hashbank import BankEntry, HashBankStore
    from crossguard.vision.hashing import HashKind, hash_frame

    banked = meme_png("known bad picture")
    db = f"sqlite:///{tmp_path / 'banks.db'}"
    store = HashBankStore(db)
    store.ensure_bank("test-bank", Category.VIOLENCE_GRAPHIC)
    pixels = np.asarray(Image.open(io.BytesIO(banked)).convert("RGB"))
    store.add([BankEntry("test-bank", HashKind.PDQ, hash_frame(pixels).pdq[0], "entry-1")])
    store.close()

    text = start_text()
    vision = start_grpc(
        "vision",
        "crossguard.vision",
        CROSSGUARD_MODEL_REPOSITORY=str(model_repository.root),
        CROSSGUARD_ONNX_PROVIDERS="CPUExecutionProvider",
        CROSSGUARD_ONNX_INTRA_OP_THREADS="1",
        CROSSGUARD_VISION_TEXT_ENDPOINT=f"127.0.0.1:{text.port}",
        CROSSGUARD_VISION_HASH_DB=db,
        CROSSGUARD_VISION_DECODE_WORKERS="1",
        CROSSGUARD_MEDIA_FILE_ROOT=str(tmp_path),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{vision.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = await health.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert status.status == health_pb2.HealthCheckResponse.SERVING

        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        response = await stub.Classify(
            image_request("m1", meme_png("I will find you and kill you"), "image/png"),
            timeout=60,
        )
        result = result_from_proto(response)
        assert (result.score_of(Category.VIOLENCE) or 0) >= 0.5
        derived = [e for e in result.evidence if isinstance(e, DerivedTextEvidence)]
        assert derived and derived[0].text.lower() == "i will find you and kill you"
        assert derived[0].model == "pp-ocr" and derived[0].location is not None
        names = {name for name, _ in result.models}
        assert {"open-nsfw", "pp-ocr", "text-heads"} <= names
        # The nsfwjs second opinion serves wherever its optional entry was built.
        if model_repository.versions("nsfwjs-mobilenet-v2"):
            assert "nsfwjs-mobilenet-v2" in names

        # The banked image again, by reference (claim-check): read with core.media.read_media.
        stored = tmp_path / "banked.png"
        stored.write_bytes(banked)
        by_reference = classifier_pb2.ClassifyRequest(
            content_id="m2",
            parts=[
                content_pb2.ContentPart(
                    part_id="img",
                    media=content_pb2.Media(
                        mime_type="image/png",
                        uri=stored.as_uri(),
                        sha256=hashlib.sha256(banked).hexdigest(),
                        size=len(banked),
                    ),
                )
            ],
        )
        matched = result_from_proto(await stub.Classify(by_reference, timeout=60))
        hashes = [e for e in matched.evidence if isinstance(e, HashMatchEvidence)]
        assert [(e.bank, e.entry_id, e.distance) for e in hashes] == [("test-bank", "entry-1", 0)]
        assert matched.score_of(Category.VIOLENCE_GRAPHIC) == 1.0

        good = meme_png("hello")
        bad = [
            (image_request("b1", good[: len(good) // 2], "image/png"), "media_image_corrupt: "),
            (
                image_request("b2", good + b"<script>x</script>", "image/png"),
                "media_image_polyglot",
            ),
            (image_request("b3", good, "image/gif"), "declared 'image/gif'"),
            (
                classifier_pb2.ClassifyRequest(
                    content_id="b4", parts=[content_pb2.ContentPart(part_id="t", text="hi")]
                ),
                "image parts only",
            ),
        ]
        for request, words in bad:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Classify(request, timeout=60)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in (info.value.details() or "")

        # The stream answers each request, errors in place, and goes on.
        async def requests():  # type: ignore[no-untyped-def]
            for r in (bad[0][0], image_request("s2", good, "image/png")):
                yield classifier_pb2.ClassifyStreamRequest(request=r)

        answers = [a async for a in stub.ClassifyStream(requests(), timeout=60)]
        assert [a.WhichOneof("outcome") for a in answers] == ["error", "response"]
        assert answers[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]

    # Through the pipeline's processor: a bad image sends its item to the dead-letter topic
    # with the decoder's reason code; a good one is decided with the image signal present.
    from crossguard.pipeline.process import Processor
    from crossguard.pipeline.settings import PipelineSettings
    from crossguard.v1 import taxonomy_pb2

    processor = Processor(
        PipelineSettings(
            text_endpoint=f"127.0.0.1:{text.port}", vision_endpoint=f"127.0.0.1:{vision.port}"
        )
    )
    try:
        cases = {
            "truncated": (good[: len(good) // 2], "media_image_corrupt"),
            "polyglot": (good + b"<script>x</script>", "media_image_polyglot"),
            "meme": (meme_png("I will find you and kill you"), ""),
        }
        for case, (data, reason) in cases.items():
            item = content_pb2.ContentItem(
                id=f"p-{case}",
                tenant="default",
                surface="comment",
                parts=[
                    content_pb2.ContentPart(
                        part_id="image-0",
                        media=content_pb2.Media(mime_type="image/png", inline_data=data),
                    )
                ],
            )
            outcome = await processor.process(item.SerializeToString(), source="test")
            if reason:
                assert (outcome.kind, outcome.dlq_code) == ("dlq", reason), case
            else:
                assert outcome.kind == "decision" and outcome.decision is not None
                missing = [m.modality for m in outcome.decision.missing_signals]
                assert taxonomy_pb2.MODALITY_IMAGE not in missing
                assert outcome.decision.action != taxonomy_pb2.ACTION_ALLOW  # the threat is caught
    finally:
        await processor.close()
