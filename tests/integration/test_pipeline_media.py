"""Media by reference through the pipeline, with a real S3-compatible server (moto) and a
classifier on the serving template (core.serving) whose part parser reads media with
read_media, as vision and audio do (they are not on main yet; this test-only modality scores
nothing, it only fetches).

- Processor.process(): a media error the classifier answers sends the item to the DLQ with its
  reason code (hash mismatch, object too large, missing object, timeout), with the original
  bytes; a good reference reaches the classifier as a reference and is decided.
- The pipeline worker process on the real broker: the same four classifier errors, and
  references or inline media that break the limits, end in the dead-letter topic with their
  reason; good references are passed on and decided; an escalated item's review task carries
  references, never bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from crossguard.core.errors import InvalidInput
from crossguard.core.media import MediaReason, MediaSettings, open_store, read_media
from crossguard.core.media.s3 import s3_client
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.serving.classifier import BatchedClassifier
from crossguard.core.serving.server import build_server
from crossguard.core.serving.servicer import part_id
from crossguard.core.serving.serving_settings import ServerSettings, ServingSettings
from crossguard.core.settings import GrpcServerSettings, KafkaSettings
from crossguard.core.taxonomy import Category, severity
from crossguard.core.topics import Topics
from crossguard.pipeline.dead_letter import DLQ_ERROR_HEADER, DLQ_REASON_HEADER
from crossguard.pipeline.io import headers_dict, iter_decisions, iter_records, publish_items
from crossguard.pipeline.process import Processor
from crossguard.pipeline.settings import PipelineSettings
from crossguard.v1 import classifier_pb2, content_pb2, review_pb2, taxonomy_pb2

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


# -- a test-only modality on the serving template: model, classifier, part parser -------------


class FetchSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_FETCH_", frozen=True, extra="ignore")


class SizeModel:
    """A Model[bytes, float]: a constant low score per media object (what matters here is
    that the bytes were fetched)."""

    name = "media-fetch"
    version = "test"

    def __init__(self) -> None:
        self.loaded = False
        self.categories: Sequence[Category] = [Category.SEXUAL]
        self.thresholds = {Category.SEXUAL: 0.5}
        self.model_infos = [(self.name, self.version)]

    def load(self) -> None:
        self.loaded = True

    def ready(self) -> bool:
        return self.loaded

    def predict(self, batch: Sequence[bytes]) -> list[float]:
        return [0.01 if data else 0.0 for data in batch]

    def close(self) -> None:
        self.loaded = False


class FetchClassifier(BatchedClassifier[list[bytes], bytes, float]):
    async def _classify(
        self, content_id: str, request: list[bytes], max_evidence: int
    ) -> ClassifierResult:
        score = max(await self.predict(request))
        return ClassifierResult(
            self.modality,
            [Score(Category.SEXUAL, score, severity(score))],
            models=list(self.model_infos),
        )


def media_parser(
    limits: MediaSettings, seen: list[content_pb2.Media]
) -> Callable[[classifier_pb2.ClassifyRequest], Awaitable[list[bytes]]]:
    """The modality's part parser: every part is media, read by reference off the event loop;
    a MediaError propagates to the template's error mapping."""

    async def parse(request: classifier_pb2.ClassifyRequest) -> list[bytes]:
        out = []
        for index, part in enumerate(request.parts):
            if part.WhichOneof("kind") != "media":
                raise InvalidInput(f"part {part_id(part, index)!r} is not media")
            seen.append(part.media)
            out.append(await asyncio.to_thread(read_media, part.media, limits))
        return out

    return parse


class FetchServer:
    """One such classifier served in this process's event loop on a random port."""

    def __init__(self, modality: Modality, limits: MediaSettings) -> None:
        self.seen: list[content_pb2.Media] = []
        classifier = FetchClassifier(SizeModel(), FetchSettings(), modality)
        self.classifier = classifier
        settings = ServerSettings(FetchSettings(), GrpcServerSettings(port=0, grace_seconds=0))
        self.server = build_server(classifier, media_parser(limits, self.seen), settings)
        self.endpoint = ""

    async def __aenter__(self) -> FetchServer:
        await self.classifier.start()
        self.endpoint = f"127.0.0.1:{await self.server.start()}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop(0)


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


def media_cases(
    bucket_limits: MediaSettings,
) -> dict[str, tuple[content_pb2.Media, str]]:
    """Content id suffix → (reference, expected reason code; "" = decided)."""
    store = open_store(bucket_limits)
    good = store.put(IMAGE, "image/png")
    big = store.put(b"x" * 5000, "image/png")  # over the classifier's 4096-byte limit
    return {
        "hash": (variant(good, sha256="0" * 64), MediaReason.HASH_MISMATCH),
        "large": (variant(big, size=100), MediaReason.TOO_LARGE),  # declared small
        "missing": (variant(good, uri=good.uri + "-gone"), MediaReason.NOT_FOUND),
        "good": (good, ""),
    }


@pytest.mark.parametrize("case", ["hash", "large", "missing", "timeout", "good"])
async def test_processor_dead_letters_the_classifiers_media_error(
    case: str, s3_server: str, bucket: str, silent_endpoint: str
) -> None:
    limits = s3_limits(s3_server, store_uri=f"s3://{bucket}/in")
    cases = media_cases(limits)
    cases["timeout"] = (cases["good"][0], MediaReason.TIMEOUT)
    media, expected = cases[case]
    # For the timeout the classifier's store is a server that never answers.
    fetch_limits = s3_limits(silent_endpoint) if case == "timeout" else limits
    async with FetchServer(Modality.IMAGE, fetch_limits) as vision:
        processor = Processor(PipelineSettings(vision_endpoint=vision.endpoint))
        try:
            raw = image_item(f"m-{case}", media).SerializeToString()
            outcome = await asyncio.wait_for(processor.process(raw, source="test"), 60)
        finally:
            await processor.close()
    # The classifier got the reference, not bytes.
    assert [m.WhichOneof("source") for m in vision.seen] == ["uri"]
    if not expected:
        assert outcome.kind == "decision" and outcome.decision is not None
        assert taxonomy_pb2.MODALITY_IMAGE not in [
            m.modality for m in outcome.decision.missing_signals
        ]
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


async def test_worker_dead_letters_media_errors_and_passes_references_on(
    kafka: KafkaSettings,
    start_worker: ServiceFactory,
    tmp_path: Path,
    s3_server: str,
    bucket: str,
    silent_endpoint: str,
) -> None:
    limits = s3_limits(s3_server, store_uri=f"s3://{bucket}/in")
    cases = media_cases(limits)
    good = cases["good"][0]
    local = open_store(MediaSettings(file_root=tmp_path / "media")).put(IMAGE, "image/png")
    # From the classifiers (image: the S3 server; audio: a store that never answers) ...
    fetch_errors = {f"w-{k}": (media, code) for k, (media, code) in cases.items() if code}
    audio_ref = variant(good, mime_type="audio/wav")
    fetch_errors["w-timeout"] = (audio_ref, MediaReason.TIMEOUT)
    # ... and from the pipeline's own checks (no fetch).
    refused = {
        "w-inline-big": (
            content_pb2.Media(mime_type="image/png", inline_data=b"x" * 1025),
            "oversized_media",
        ),
        "w-http": (variant(good, uri="https://cdn.example/a.png"), MediaReason.SCHEME_NOT_ALLOWED),
        "w-no-sha": (variant(good, sha256=""), MediaReason.BAD_REFERENCE),
        "w-no-size": (variant(good, size=0), MediaReason.BAD_REFERENCE),
        "w-too-large": (variant(good, size=100_001), MediaReason.TOO_LARGE),
        "w-outside": (variant(local, uri="file:///etc/passwd"), MediaReason.BAD_REFERENCE),
    }
    small_inline = content_pb2.Media(mime_type="image/png", inline_data=b"tiny png")
    bad = fetch_errors | refused
    # The image classifier reads s3:// and, inside the worker's media root, file://.
    image_limits = limits.model_copy(
        update={"allowed_schemes": "s3,file", "file_root": tmp_path / "media"}
    )
    async with (
        FetchServer(Modality.IMAGE, image_limits) as vision,
        FetchServer(Modality.AUDIO, s3_limits(silent_endpoint)) as audio,
    ):
        await asyncio.to_thread(
            start_worker,
            CROSSGUARD_VISION_ENDPOINT=vision.endpoint,
            CROSSGUARD_AUDIO_ENDPOINT=audio.endpoint,
            CROSSGUARD_MAX_INLINE_BYTES="1024",
            CROSSGUARD_MEDIA_MAX_BYTES="100000",
        )
        items = [image_item(cid, media) for cid, (media, _) in bad.items()]
        items += [image_item("w-good", good), image_item("w-local", local)]
        items += [image_item("w-inline-small", small_inline)]
        await publish_items(kafka.bootstrap_servers, items, kafka=kafka)

        dlq = await dlq_by_id(kafka, set(bad), timeout_s=60)
        decided = {
            d.content_id: d
            async for d in iter_decisions(
                kafka.bootstrap_servers,
                kafka=kafka,
                content_ids={"w-good", "w-local", "w-inline-small"},
                timeout_s=60,
            )
        }
    assert {cid: h.get(DLQ_ERROR_HEADER) for cid, h in dlq.items()} == {
        cid: code for cid, (_, code) in bad.items()
    }
    for cid in fetch_errors:
        modality = "audio" if cid == "w-timeout" else "image"
        assert dlq[cid][DLQ_REASON_HEADER].startswith(f"{modality} classifier: media_")
    assert "by reference" in dlq["w-inline-big"][DLQ_REASON_HEADER]

    # Good references were fetched and scored: no image signal missing.
    assert set(decided) == {"w-good", "w-local", "w-inline-small"}
    for d in decided.values():
        assert taxonomy_pb2.MODALITY_IMAGE not in [m.modality for m in d.missing_signals]
    assert good in vision.seen  # as a reference
    # The worker's media root is tmp_path/media (start_worker): the local reference is inside.
    assert local in vision.seen

    # No text classifier here, so the policy escalates: review tasks carry references only.
    tasks = {
        (rec.key or b"").decode(): review_pb2.ReviewTask.FromString(rec.value or b"")
        async for rec in iter_records(
            kafka.bootstrap_servers,
            Topics.from_settings(kafka).review,
            kafka=kafka,
            idle_timeout_s=2.0,
        )
    }
    assert set(tasks) == {"w-good", "w-local", "w-inline-small"}
    assert tasks["w-good"].item.parts[1].media == good
    small = tasks["w-inline-small"].item.parts[1].media
    assert small.WhichOneof("source") == "uri" and small.size == len(b"tiny png")
    assert small.uri.startswith((tmp_path / "media").as_uri())
    assert small.sha256 == hashlib.sha256(b"tiny png").hexdigest()
