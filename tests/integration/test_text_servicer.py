"""The text servicer in-process on a random loopback port, over the real TextModel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc
import pytest

from crossguard.core.grpc_server import GrpcServer
from crossguard.core.model_repository import ModelRepository
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.serving.servicer import (
    SERVICE_NAME,
    STREAM_STOPPED,
    ClassifierServicer,
    add_to_server,
)
from crossguard.core.settings import GrpcServerSettings, ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.text.server import build_server
from crossguard.text.service import TextClassifier
from crossguard.text.servicer import parse_parts
from crossguard.text.settings import TextServerSettings, TextServiceSettings
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2

pytestmark = pytest.mark.integration

THREAT = "I will find you and kill you"
FRIENDLY = "Thank you so much for the lovely dinner, see you next week!"
THREAT_CATEGORIES = {
    Category.VIOLENCE,
    Category.HARASSMENT,
    Category.HARASSMENT_THREATENING,
    Category.HATE_THREATENING,
}


@pytest.fixture(scope="module")
def text_model(model_repository: ModelRepository) -> Iterator[Any]:
    """The real TextModel, loaded once for the module."""
    from crossguard.text.model import TextModel

    model = TextModel(
        model_repository,
        ModelSettings(
            model_repository=model_repository.root, onnx_providers="CPUExecutionProvider"
        ),
    )
    model.load()
    yield model
    model.close()


Stub = Any  # classifier_pb2_grpc.ClassifierServiceAsyncStub exists only in the .pyi
StubFactory = Callable[..., Awaitable[tuple[Stub, grpc.aio.Channel, TextClassifier]]]


@pytest.fixture
async def make_stub(text_model: Any) -> AsyncIterator[StubFactory]:
    """Factory: a text GrpcServer over the shared model with settings overrides → stub."""
    made: list[tuple[GrpcServer, grpc.aio.Channel]] = []

    async def make(**overrides: object) -> tuple[Stub, grpc.aio.Channel, TextClassifier]:
        classifier = TextClassifier(
            text_model, TextServiceSettings.model_validate(overrides), owns_model=False
        )
        await classifier.start()
        server = build_server(classifier, server_settings())
        port = await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        made.append((server, channel))
        return classifier_pb2_grpc.ClassifierServiceStub(channel), channel, classifier

    yield make
    for server, channel in made:
        await channel.close()
        await server.stop(0)


def server_settings(grace_seconds: float = 1.0) -> TextServerSettings:
    return TextServerSettings(grpc=GrpcServerSettings(port=0, grace_seconds=grace_seconds))


def text_request(*texts: str, content_id: str = "c1", **kwargs: Any) -> Any:
    return classifier_pb2.ClassifyRequest(
        content_id=content_id,
        parts=[content_pb2.ContentPart(part_id=f"p{i}", text=t) for i, t in enumerate(texts)],
        **kwargs,
    )


async def test_threat_flagged_with_evidence(make_stub: StubFactory) -> None:
    stub, _, classifier = await make_stub()
    result = result_from_proto(await stub.Classify(text_request(THREAT)))
    flagged = {s.category for s in result.scores if s.score >= classifier.threshold(s.category)}
    assert flagged & THREAT_CATEGORIES, result.scores
    top = max((s for s in result.scores if s.category in THREAT_CATEGORIES), key=lambda s: s.score)
    assert top.severity >= 1
    assert result.evidence, "flagged categories come with evidence spans"
    for e in result.evidence:
        assert e.part_id == "p0"
        assert THREAT[e.start : e.end] == e.text
    assert any("kill" in e.text for e in result.evidence), result.evidence
    assert result.models and all(name and version for name, version in result.models)
    assert {t.stage for t in result.timings} >= {"model", "total"}


async def test_friendly_text_below_all_thresholds(make_stub: StubFactory) -> None:
    stub, _, classifier = await make_stub()
    result = result_from_proto(await stub.Classify(text_request(FRIENDLY)))
    assert result.scores
    for s in result.scores:
        assert s.score < classifier.threshold(s.category), s
    assert result.evidence == []


async def test_multilingual_emoji_and_controls_accepted(make_stub: StubFactory) -> None:
    stub, _, _ = await make_stub()
    texts = [
        "Ça va? Je suis très content 😀",
        "这是一个测试句子。日本語のテキスト",
        "مرحبا بالعالم — שלום עולם",
        "zero\u200bwidth \x00\x07\x1b[0m controls \u202e reversed \ufeff",
        "🔥" * 500,
    ]
    resp = await stub.Classify(text_request(*texts))
    assert len(resp.scores) > 0
    assert all(0.0 <= s.score <= 1.0 for s in resp.scores)


async def test_long_text_is_chunked_and_threat_found(make_stub: StubFactory) -> None:
    stub, _, classifier = await make_stub()
    filler = "The weather report said it would be sunny with light winds all afternoon. " * 60
    resp = await stub.Classify(text_request(filler + THREAT + ". " + filler))
    result = result_from_proto(resp)
    short = result_from_proto(await stub.Classify(text_request(FRIENDLY)))
    best = max(result.score_of(c) or 0.0 for c in THREAT_CATEGORIES)
    assert best >= max(short.score_of(c) or 0.0 for c in THREAT_CATEGORIES)
    assert any((result.score_of(c) or 0.0) >= classifier.threshold(c) for c in THREAT_CATEGORIES), (
        "a threat buried in a long text is still found (max over chunks)"
    )


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (classifier_pb2.ClassifyRequest(content_id="e"), "no text parts"),
        (text_request(""), "empty"),
        (text_request("x" * 1_000_000), r"1000000 characters.*limit is 20000"),
        (
            classifier_pb2.ClassifyRequest(
                content_id="m",
                parts=[
                    content_pb2.ContentPart(
                        part_id="img",
                        media=content_pb2.Media(mime_type="image/png", inline_data=b"\x89PNG"),
                    )
                ],
            ),
            "text service takes text parts only",
        ),
    ],
    ids=["empty-request", "empty-text", "1MB-text", "media-part"],
)
async def test_bad_requests_invalid_argument(
    make_stub: StubFactory, request_: Any, match: str
) -> None:
    stub, _, _ = await make_stub()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() is not None
    import re

    assert re.search(match, err.value.details() or ""), err.value.details()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


async def test_invalid_utf8_is_rejected_not_crashing(make_stub: StubFactory) -> None:
    """Invalid UTF-8 in a proto3 string cannot be parsed. With the generated handler grpc answers
    UNKNOWN ("Unexpected <class DecodeError>: ... String field had bad UTF-8"); the text
    servicer parses the bytes itself and answers INVALID_ARGUMENT. The server stays healthy."""
    stub, channel, _ = await make_stub()
    part = _field(1, b"p0") + _field(2, b"bad \xff\xfe utf-8 \xc3\x28")
    raw = _field(1, b"c-bad") + _field(2, part)
    call = channel.unary_unary(
        f"/{SERVICE_NAME}/Classify",
        request_serializer=None,
        response_deserializer=None,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(raw)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "not a valid crossguard.v1.ClassifyRequest" in details
    assert "UTF-8" in details
    # The same bytes with valid UTF-8 are served normally.
    good = _field(1, b"c-good") + _field(2, _field(1, b"p0") + _field(2, "caf\u00e9 ok".encode()))
    resp = classifier_pb2.ClassifyResponse.FromString(await call(good))
    assert len(resp.scores) > 0
    assert (await stub.Classify(text_request(FRIENDLY))).scores


async def test_max_evidence_respected(make_stub: StubFactory) -> None:
    stub, _, _ = await make_stub()
    text = "I will kill you, you worthless idiot, I will find you and kill your whole family"
    resp = await stub.Classify(text_request(text, max_evidence=1))
    assert len(resp.evidence) == 1  # a clear threat has evidence; the cap keeps it to one


async def test_stream_answers_each_request_in_order_with_its_error(make_stub: StubFactory) -> None:
    """One ClassifyStream carrying good and bad requests: each answered in request order, a bad
    one by its error (the unary call's status and message), the stream going on after it; the
    good ones score exactly as unary calls do."""
    stub, channel, _ = await make_stub()
    media = classifier_pb2.ClassifyRequest(
        content_id="s-media",
        parts=[content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png"))],
    )
    requests = [
        text_request(THREAT, content_id="s-threat"),
        text_request("", content_id="s-empty"),
        media,
        text_request(FRIENDLY, content_id="s-friendly"),
    ]
    bad_utf8 = _field(1, _field(1, b"s-bad") + _field(2, _field(2, b"\xff\xfe")))
    raw = [classifier_pb2.ClassifyStreamRequest(request=r).SerializeToString() for r in requests]
    raw.insert(2, bad_utf8)
    call = channel.stream_stream(
        f"/{SERVICE_NAME}/ClassifyStream",
        request_serializer=None,
        response_deserializer=classifier_pb2.ClassifyStreamResponse.FromString,
    )
    got = [r async for r in call(iter(raw))]

    assert [(r.content_id, r.WhichOneof("outcome")) for r in got] == [
        ("s-threat", "response"),
        ("s-empty", "error"),
        ("", "error"),
        ("s-media", "error"),
        ("s-friendly", "response"),
    ]
    invalid = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert [r.error.code for r in got if r.HasField("error")] == [invalid] * 3
    assert "empty" in got[1].error.message
    assert "not a valid crossguard.v1.ClassifyStreamRequest" in got[2].error.message
    assert "text service takes text parts only" in got[3].error.message
    for streamed, request in ((got[0], requests[0]), (got[4], requests[3])):
        unary = await stub.Classify(request)
        assert [(s.category, s.score) for s in streamed.response.scores] == [
            (s.category, s.score) for s in unary.scores
        ]


async def test_stream_of_many_requests_is_batched_and_answered_in_order(
    make_stub: StubFactory,
) -> None:
    stub, _, classifier = await make_stub(evidence_passes=0)
    texts = [f"message number {i}: {FRIENDLY if i % 2 else THREAT}" for i in range(40)]
    call = stub.ClassifyStream(
        classifier_pb2.ClassifyStreamRequest(request=text_request(t, content_id=f"m{i}"))
        for i, t in enumerate(texts)
    )
    before = classifier.batcher.stats
    got = [r async for r in call]
    after = classifier.batcher.stats
    assert [r.content_id for r in got] == [f"m{i}" for i in range(40)]
    assert all(r.HasField("response") and r.response.scores for r in got)
    # Requests of one stream reach the micro-batcher together: fewer batches than texts.
    assert after.items - before.items == 40
    assert after.batches - before.batches < 40


def _stream_requests(n: int) -> list[bytes]:
    return [
        classifier_pb2.ClassifyStreamRequest(
            request=text_request(f"{FRIENDLY} ({i})", content_id=f"r{i}")
        ).SerializeToString()
        for i in range(n)
    ]


async def test_stream_works_without_any_interceptor(text_model: Any) -> None:
    """The stream handler is an async generator of its own, not one that an interceptor
    happens to wrap."""
    classifier = TextClassifier(text_model, TextServiceSettings(), owns_model=False)
    await classifier.start()
    server = grpc.aio.server()
    add_to_server(ClassifierServicer(classifier, parse_parts, 8, asyncio.Event()), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.stream_stream(
                f"/{SERVICE_NAME}/ClassifyStream",
                request_serializer=None,
                response_deserializer=classifier_pb2.ClassifyStreamResponse.FromString,
            )
            got = [r async for r in call(iter(_stream_requests(3)))]
    finally:
        await server.stop(None)
        await classifier.close()
    assert [r.content_id for r in got] == ["r0", "r1", "r2"]
    assert all(r.HasField("response") for r in got)


async def test_stop_ends_open_streams_promptly_after_answering_what_they_read(
    text_model: Any,
) -> None:
    """On SIGTERM's path (GrpcServer.stop) an open stream stops reading, answers every request
    it read, in order, and ends, without the stop waiting out the grace period; nothing it read
    goes unanswered."""
    classifier = TextClassifier(
        text_model, TextServiceSettings(evidence_passes=0), owns_model=False
    )
    await classifier.start()
    # A stop that waited for the stream would take the whole grace period: the wait_for below
    # is a hang guard far inside it, not a timing.
    server = build_server(classifier, server_settings(grace_seconds=3600))
    port = await server.start()
    payloads = _stream_requests(100_000)
    answered: list[str] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(
            f"/{SERVICE_NAME}/ClassifyStream",
            request_serializer=None,
            response_deserializer=classifier_pb2.ClassifyStreamResponse.FromString,
        )(iter(payloads))

        flowing = asyncio.Event()

        async def read_all() -> None:
            async for r in call:
                answered.append(r.content_id)
                if len(answered) == 20:
                    flowing.set()

        reading = asyncio.ensure_future(read_all())
        await asyncio.wait_for(flowing.wait(), 60)
        await asyncio.wait_for(server.stop(), 300)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await reading
    # The server ends the stream with UNAVAILABLE, but a client still writing may see the
    # connection close first ("Stream removed"), or INTERNAL from a grpc.aio write in flight
    # (grpc issue 36066): the contract is "not OK: resend after the last answer".
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), err.value
    assert answered == [f"r{i}" for i in range(len(answered))]


async def test_stop_tells_an_idle_stream_why_it_ends(text_model: Any) -> None:
    classifier = TextClassifier(text_model, TextServiceSettings(), owns_model=False)
    await classifier.start()
    server = build_server(classifier, server_settings(grace_seconds=20))
    port = await server.start()
    never = asyncio.Event()

    async def three_then_idle() -> AsyncIterator[bytes]:
        for raw in _stream_requests(3):
            yield raw
        await never.wait()

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.stream_stream(
            f"/{SERVICE_NAME}/ClassifyStream",
            request_serializer=None,
            response_deserializer=classifier_pb2.ClassifyStreamResponse.FromString,
        )(three_then_idle())
        answered = [(await call.read()).content_id for _ in range(3)]
        await server.stop()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
    assert answered == ["r0", "r1", "r2"]
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert err.value.details() == STREAM_STOPPED
