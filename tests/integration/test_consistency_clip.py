"""Image vs caption agreement end to end with a tiny randomly initialised CLIP that the test
exports (conftest's tiny_clip_export): `python -m crossguard.vision` with
CROSSGUARD_VISION_CLIP_MODEL returns each image's CLIP embedding; the consistency server with
CROSSGUARD_CONSISTENCY_CLIP_MODEL embeds the caption with the same entry's text tower and raises
image_caption_agreement over gRPC, equal to the runtime's own cosine."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import numpy as np
import pytest
from PIL import Image

from crossguard.consistency.server import build_server
from crossguard.consistency.settings import ConsistencySettings
from crossguard.core.errors import ModelError
from crossguard.core.grpc_server import GrpcServer
from crossguard.core.model_repository import ModelRepository
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.settings import GrpcServerSettings, ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    consistency_pb2,
    consistency_pb2_grpc,
    content_pb2,
    taxonomy_pb2,
)
from crossguard.vision.clip import ClipModel

if TYPE_CHECKING:
    from tests.integration.conftest import GrpcServiceFactory

pytestmark = pytest.mark.integration

CAPTION = "a photo of a cat"
CPU = ModelSettings(onnx_providers="CPUExecutionProvider", onnx_intra_op_threads=1)


@pytest.fixture(scope="module")
def clip_root(
    tiny_clip_export: tuple[Path, Path],
    model_repository: ModelRepository,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """A model repository with open-nsfw (the vision service's base model) and tiny-clip."""
    root = tmp_path_factory.mktemp("vision-clip-repo")
    (root / "open-nsfw").symlink_to(model_repository.root.resolve() / "open-nsfw")
    (root / "tiny-clip").symlink_to(tiny_clip_export[1] / "tiny-clip")
    return root


@pytest.fixture
async def consistency(clip_root: Path) -> AsyncIterator[GrpcServer]:
    srv = build_server(
        GrpcServerSettings(port=0, grace_seconds=0.5),
        ConsistencySettings(semantic_agreement=False, clip_model="tiny-clip"),
        CPU.model_copy(update={"model_repository": clip_root}),
    )
    await srv.start()
    yield srv
    await srv.stop()


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="PNG")
    return buf.getvalue()


def _media(part_id: str, data: bytes) -> content_pb2.ContentPart:
    return content_pb2.ContentPart(
        part_id=part_id, media=content_pb2.Media(mime_type="image/png", inline_data=data)
    )


async def test_image_caption_agreement_through_vision_and_consistency_servers(
    start_grpc: GrpcServiceFactory, clip_root: Path, consistency: GrpcServer
) -> None:
    images = {"red": _png((200, 30, 30)), "green": _png((30, 200, 60))}
    vision = start_grpc(
        "vision",
        "crossguard.vision",
        CROSSGUARD_MODEL_REPOSITORY=str(clip_root),
        CROSSGUARD_ONNX_PROVIDERS="CPUExecutionProvider",
        CROSSGUARD_ONNX_INTRA_OP_THREADS="1",
        CROSSGUARD_VISION_CLIP_MODEL="tiny-clip",
        CROSSGUARD_VISION_OCR="false",
        CROSSGUARD_VISION_HASH_BANKS="false",
        CROSSGUARD_VISION_NSFWJS="false",
        CROSSGUARD_VISION_DECODE_WORKERS="1",
    )
    parts = [_media(k, v) for k, v in images.items()]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{vision.port}") as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        image_response = await stub.Classify(
            classifier_pb2.ClassifyRequest(content_id="m1", parts=parts), timeout=60
        )
    result = result_from_proto(image_response)
    assert ("tiny-clip", "1") in result.models
    assert [e.part_id for e in result.embeddings] == ["red", "green"]

    # The embeddings are the runtime's own image embeddings, and agreement its cosine.
    clip = ClipModel("tiny-clip", ModelRepository(clip_root), CPU)
    clip.load()
    expected: dict[str, float] = {}
    for emb in result.embeddings:
        assert emb.model == ("tiny-clip", "1")
        pixels = np.asarray(Image.open(io.BytesIO(images[emb.part_id])).convert("RGB"))
        np.testing.assert_allclose(emb.vector, clip.embed_images([pixels])[0], atol=1e-4)
        cosine = float(clip.similarity([pixels], [CAPTION])[0, 0])
        expected[emb.part_id] = min(1.0, max(0.0, cosine))
    clip.close()

    text_response = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)
    text_response.scores.add(category=Category.HATE.proto, score=0.9)
    item = content_pb2.ContentItem(
        id="m1", parts=[content_pb2.ContentPart(part_id="cap", text=CAPTION), *parts]
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{consistency.port}") as channel:
        check = consistency_pb2_grpc.ConsistencyServiceStub(channel)
        resp = await check.Check(
            consistency_pb2.CheckRequest(item=item, responses=[image_response, text_response])
        )
    (sig,) = [s for s in resp.signals if s.name == "image_caption_agreement"]
    assert sig.value == pytest.approx(min(expected.values()), abs=1e-4)
    assert list(sig.part_ids) == ["red", "green", "cap"]
    assert set(sig.modalities) == {taxonomy_pb2.MODALITY_IMAGE, taxonomy_pb2.MODALITY_TEXT}
    assert sig.detail.startswith("image vs caption (tiny-clip:1): similarity ")
    assert ("tiny-clip", "1") in [(m.name, m.version) for m in resp.models]
    # A flagged item whose caption agrees little with an image says so (a cue, not a score).
    assert ("the caption does not match image" in resp.explanation) == (
        min(expected.values()) < 0.2
    )
    assert [round(s.score, 3) for s in resp.fused_scores if s.category == Category.HATE.proto] == [
        0.9
    ]


def test_a_clip_model_that_is_not_clip_fails_start_up(clip_root: Path) -> None:
    with pytest.raises(ModelError, match="CROSSGUARD_CONSISTENCY_CLIP_MODEL: open-nsfw is a"):
        build_server(
            GrpcServerSettings(port=0),
            ConsistencySettings(semantic_agreement=False, clip_model="open-nsfw"),
            CPU.model_copy(update={"model_repository": clip_root}),
        )
