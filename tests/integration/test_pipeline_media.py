"""Media by reference through the pipeline.

- Processor.process() with a real gRPC classifier that reads media with read_media from a real
  S3-compatible server (moto): a media error the classifier answers sends the item to the DLQ
  with its reason code (hash mismatch, object too large, missing object, timeout); a good
  reference reaches the classifier as a reference and is decided.
- The pipeline worker process on the real broker: references and inline media that break the
  limits end in the dead-letter topic with their reason; a valid reference is passed on and
  decided; an escalated item's review task carries a reference, never bytes.

The vision and audio services are not on main yet, so the classifier here is a test servicer
on the shared gRPC bootstrap (core.grpc_server) that only reads the media.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from pydantic import SecretStr

from crossguard.core.grpc_server import GrpcServer, ServiceRegistration
from crossguard.core.media import MediaReason, MediaSettings, open_store, read_media
from crossguard.core.media.s3 import s3_client
from crossguard.core.settings import GrpcServerSettings, KafkaSettings
from crossguard.core.taxonomy import Category
from crossguard.core.topics import Topics
from crossguard.pipeline.io import headers_dict, iter_decisions, iter_records, publish_items
from crossguard.pipeline.process import DLQ_ERROR_HEADER, DLQ_REASON_HEADER, Processor
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import (
    classifier_pb2,
    classifier_pb2_grpc,
    content_pb2,
    review_pb2,
    taxonomy_pb2,
)

from .conftest import ServiceFactory

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

IMAGE = b"\x89PNG\r\n\x1a\n not really an image" * 8


def s3_limits(endpoint: str, **kw: object) -> MediaSettings:
    fields: dict[str, object] = {
        "s3_endpoint": endpoint,
        "s3_region": "us-east-1",
        "s3_access_key_id": SecretStr("testing"),
        "s3_secret_access_key": SecretStr("testing"),
        "fetch_timeout_s": 0.5,
        "max_bytes": 4096,
        "allowed_schemes": "s3",
        **kw,
    }
    return MediaSettings(**fields)  # type: ignore[arg-type]


class MediaReadingClassifier(classifier_pb2_grpc.ClassifierServiceServicer):
    """Reads every media part with read_media (off the event loop), as vision/audio do, and
    scores nothing; media errors propagate to the shared interceptor."""

    def __init__(self, limits: MediaSettings) -> None:
        self.limits = limits
        self.seen: list[content_pb2.Media] = []

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: grpc.aio.ServicerContext
    ) -> classifier_pb2.ClassifyResponse:
        for part in request.parts:
            self.seen.append(part.media)
            await asyncio.to_thread(read_media, part.media, self.limits)
        return classifier_pb2.ClassifyResponse(
            modality=taxonomy_pb2.MODALITY_IMAGE,
            scores=[taxonomy_pb2.CategoryScore(category=Category.SEXUAL.proto, score=0.01)],
            models=[classifier_pb2.ModelInfo(name="media-reader", version="test")],
        )


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An 'S3 endpoint' that accepts connections and never answers."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture
def bucket(s3_server: str) -> str:
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3_client(s3_limits(s3_server)).make_bucket(name)
    return name


@pytest.fixture
async def classifier(s3_server: str) -> AsyncIterator[tuple[MediaReadingClassifier, int]]:
    servicer = MediaReadingClassifier(s3_limits(s3_server))
    server = GrpcServer(
        GrpcServerSettings(port=0, grace_seconds=0),
        [
            ServiceRegistration(
                "crossguard.v1.ClassifierService",
                lambda s: classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, s),
            )
        ],
    )
    port = await server.start()
    yield servicer, port
    await server.stop(0)


def image_item(cid: str, media: content_pb2.Media) -> content_pb2.ContentItem:
    return content_pb2.ContentItem(
        id=cid,
        tenant="acme",
        surface="comment",
        parts=[
            content_pb2.ContentPart(part_id="caption", text="holiday"),
            content_pb2.ContentPart(part_id="image-0", media=media),
        ],
    )


def variant(media: content_pb2.Media, **fields: object) -> content_pb2.Media:
    out = content_pb2.Media()
    out.CopyFrom(media)
    for name, value in fields.items():
        setattr(out, name, value)
    return out


@pytest.mark.parametrize(
    "case", ["hash_mismatch", "too_large", "missing_object", "timeout", "good"]
)
async def test_classifier_media_error_sends_the_item_to_the_dlq(
    case: str,
    s3_server: str,
    bucket: str,
    silent_endpoint: str,
    classifier: tuple[MediaReadingClassifier, int],
) -> None:
    servicer, port = classifier
    limits = s3_limits(s3_server, store_uri=f"s3://{bucket}/in")
    store = open_store(limits)
    good = store.put(IMAGE, "image/png")
    media, expected = {
        "hash_mismatch": (variant(good, sha256="0" * 64), MediaReason.HASH_MISMATCH),
        # stored object over the classifier's limit; its reference declares a small size
        "too_large": (
            variant(store.put(b"x" * 5000, "image/png"), size=100),
            MediaReason.TOO_LARGE,
        ),
        "missing_object": (variant(good, uri=good.uri + "-gone"), MediaReason.NOT_FOUND),
        "timeout": (good, MediaReason.TIMEOUT),
        "good": (good, ""),
    }[case]
    if case == "timeout":
        servicer.limits = s3_limits(silent_endpoint)
    settings = PipelineSettings(vision_endpoint=f"127.0.0.1:{port}")
    processor = Processor(settings, media_store=open_store(limits))
    try:
        raw = image_item(f"m-{case}", media).SerializeToString()
        outcome = await asyncio.wait_for(processor.process(raw, source="test"), 60)
    finally:
        await processor.close()
    # The classifier got the reference, not bytes.
    assert [m.WhichOneof("source") for m in servicer.seen] == ["uri"]
    if not expected:
        assert outcome.kind == "decision"
        assert outcome.decision is not None and not any(
            m.modality == taxonomy_pb2.MODALITY_IMAGE for m in outcome.decision.missing_signals
        )
        return
    assert (outcome.kind, outcome.dlq_code, outcome.content_id) == ("dlq", expected, f"m-{case}")
    (record,) = outcome.records
    headers = dict(record.headers)
    assert headers[DLQ_ERROR_HEADER] == expected.encode()
    assert headers[DLQ_REASON_HEADER].startswith(f"image classifier: {expected}: ".encode())
    assert (record.key, record.value) == (f"m-{case}".encode(), raw)


# -- the worker on the real broker -------------------------------------------------------------


async def dlq_by_id(
    kafka: KafkaSettings, ids: set[str], timeout_s: float
) -> dict[str, dict[str, str]]:
    """DLQ records' headers by content id, read until every id is there."""
    topic = Topics.from_settings(kafka).content_dlq
    found: dict[str, dict[str, str]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while set(found) != ids and loop.time() < deadline:
        async for rec in iter_records(
            kafka.bootstrap_servers, topic, kafka=kafka, idle_timeout_s=2.0
        ):
            key = (rec.key or b"").decode()
            if key in ids:
                found[key] = headers_dict(rec.headers)
    return found


async def test_worker_dead_letters_bad_references_and_passes_good_ones(
    kafka: KafkaSettings, start_worker: ServiceFactory, tmp_path: Path
) -> None:
    root = tmp_path / "media"  # the worker's media root (start_worker)
    store = open_store(MediaSettings(file_root=root))
    good = store.put(IMAGE, "image/png")
    sha = hashlib.sha256(IMAGE).hexdigest()
    start_worker(CROSSGUARD_MAX_INLINE_BYTES="1024", CROSSGUARD_MEDIA_MAX_BYTES="100000")
    bad = {
        "r-inline-big": (
            content_pb2.Media(mime_type="image/png", inline_data=b"x" * 1025),
            "oversized_media",
        ),
        "r-http": (variant(good, uri="https://cdn.example/a.png"), MediaReason.SCHEME_NOT_ALLOWED),
        "r-no-sha": (variant(good, sha256=""), MediaReason.BAD_REFERENCE),
        "r-no-size": (variant(good, size=0), MediaReason.BAD_REFERENCE),
        "r-too-large": (variant(good, size=100_001), MediaReason.TOO_LARGE),
        "r-outside": (variant(good, uri="file:///etc/passwd"), MediaReason.BAD_REFERENCE),
    }
    small_inline = content_pb2.Media(mime_type="image/png", inline_data=b"tiny png")
    items = [image_item(cid, media) for cid, (media, _) in bad.items()]
    items += [image_item("r-good", good), image_item("r-inline-small", small_inline)]
    await publish_items(kafka.bootstrap_servers, items, kafka=kafka)

    dlq = await dlq_by_id(kafka, set(bad), timeout_s=60)
    assert {cid: h.get(DLQ_ERROR_HEADER) for cid, h in dlq.items()} == {
        cid: code for cid, (_, code) in bad.items()
    }
    assert "by reference" in dlq["r-inline-big"][DLQ_REASON_HEADER]

    decided = {
        d.content_id: d
        async for d in iter_decisions(
            kafka.bootstrap_servers,
            kafka=kafka,
            content_ids={"r-good", "r-inline-small"},
            timeout_s=60,
        )
    }
    # No vision service here: the image signal is missing, so the policy escalates both.
    for d in decided.values():
        assert [m.reason for m in d.missing_signals if m.modality == taxonomy_pb2.MODALITY_IMAGE]
    tasks = {
        (rec.key or b"").decode(): review_pb2.ReviewTask.FromString(rec.value or b"")
        async for rec in iter_records(
            kafka.bootstrap_servers,
            Topics.from_settings(kafka).review,
            kafka=kafka,
            idle_timeout_s=2.0,
        )
    }
    assert set(tasks) == {"r-good", "r-inline-small"}
    assert tasks["r-good"].item.parts[1].media == good
    small = tasks["r-inline-small"].item.parts[1].media
    assert small.WhichOneof("source") == "uri" and small.size == len(b"tiny png")
    assert small.uri.startswith(root.resolve().as_uri())
    assert small.sha256 == hashlib.sha256(b"tiny png").hexdigest()
    assert sha == good.sha256
