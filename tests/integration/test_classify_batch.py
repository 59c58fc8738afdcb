"""ClassifyBatch and the coalescing client (crossguard.core.serving.batch_client) against the
real text service in-process on a random loopback port, over the real TextModel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from crossguard.core.model_repository import ModelRepository
from crossguard.core.proto_convert import result_from_proto
from crossguard.core.serving.batch_client import BatchingClassifierClient
from crossguard.core.settings import GrpcServerSettings, ModelSettings
from crossguard.text.server import build_server
from crossguard.text.service import TextClassifier
from crossguard.text.settings import TextServerSettings, TextServiceSettings
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2, taxonomy_pb2

pytestmark = pytest.mark.integration

THREAT = "I will find you and kill you"
FRIENDLY = "Thank you so much for the lovely dinner, see you next week!"


@pytest.fixture(scope="module")
def text_model(model_repository: ModelRepository) -> Iterator[Any]:
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


@pytest.fixture
async def endpoint(text_model: Any) -> AsyncIterator[str]:
    """A text server over the shared model; its address."""
    classifier = TextClassifier(text_model, TextServiceSettings(), owns_model=False)
    await classifier.start()
    server = build_server(classifier, TextServerSettings(grpc=GrpcServerSettings(port=0)))
    port = await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


def text_request(content_id: str, *texts: str) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        content_id=content_id,
        parts=[content_pb2.ContentPart(part_id=f"p{i}", text=t) for i, t in enumerate(texts)],
    )


async def test_a_batch_over_grpc_answers_each_item(endpoint: str) -> None:
    media = classifier_pb2.ClassifyRequest(
        content_id="m",
        parts=[content_pb2.ContentPart(media=content_pb2.Media(mime_type="image/png"))],
    )
    batch = classifier_pb2.ClassifyBatchRequest(
        requests=[
            text_request("t", THREAT),
            text_request("e", " "),
            media,
            text_request("f", FRIENDLY),
        ]
    )
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        response = await stub.ClassifyBatch(batch, timeout=30)
        unary = result_from_proto(await stub.Classify(text_request("t", THREAT), timeout=30))
    assert [r.content_id for r in response.results] == ["t", "e", "m", "f"]
    assert [r.WhichOneof("outcome") for r in response.results] == [
        "response",
        "error",
        "error",
        "response",
    ]
    assert {r.error.code for r in response.results[1:3]} == {
        grpc.StatusCode.INVALID_ARGUMENT.value[0]
    }
    threat = result_from_proto(response.results[0].response)
    friendly = result_from_proto(response.results[3].response)
    # The same scores as a unary call, and evidence only where a score calls for it.
    assert [(s.category, round(s.score, 5)) for s in threat.scores] == [
        (s.category, round(s.score, 5)) for s in unary.scores
    ]
    assert threat.evidence and any("kill" in e.text for e in threat.evidence)  # type: ignore[union-attr]
    assert friendly.evidence == []


async def test_the_deadline_covers_the_batch(endpoint: str) -> None:
    long_text = "The weather report said it would be sunny with light winds. " * 300
    batch = classifier_pb2.ClassifyBatchRequest(
        requests=[text_request(str(k), long_text) for k in range(32)]
    )
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ClassifyBatch(batch, timeout=0.05)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The server goes on answering.
        small = classifier_pb2.ClassifyBatchRequest(requests=[text_request("s", FRIENDLY)])
        again = await stub.ClassifyBatch(small, timeout=30)
    assert again.results[0].WhichOneof("outcome") == "response"


async def test_concurrent_calls_go_out_as_batches(endpoint: str) -> None:
    texts = [THREAT, FRIENDLY, "you are an idiot", "lovely weather today"] * 5
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        client = BatchingClassifierClient(lambda: stub, max_items=8, max_delay=0.05)
        calls = [client.Classify(text_request(str(k), t), timeout=30) for k, t in enumerate(texts)]
        calls.append(client.Classify(text_request("bad"), timeout=30))  # no parts
        answers = await asyncio.gather(*calls, return_exceptions=True)
        alone = await stub.Classify(text_request("x", texts[2]), timeout=30)
        await client.close()
    assert client.items == 21 and client.batches == 3  # 8 + 8 + 5
    error = answers[-1]
    assert isinstance(error, grpc.aio.AioRpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "no text parts" in error.details()
    responses = answers[:-1]
    assert all(isinstance(r, classifier_pb2.ClassifyResponse) for r in responses)
    got = {s.category: s.score for s in responses[2].scores}  # type: ignore[union-attr]
    assert got == pytest.approx({s.category: s.score for s in alone.scores}, abs=1e-5)


class UnaryOnly(classifier_pb2_grpc.ClassifierServiceServicer):
    """A ClassifierService from before ClassifyBatch: the generated base answers UNIMPLEMENTED."""

    async def Classify(self, request: Any, context: Any) -> classifier_pb2.ClassifyResponse:  # type: ignore[override]
        return classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)


async def test_falls_back_to_unary_calls_without_classify_batch() -> None:
    server = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(UnaryOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            client = BatchingClassifierClient(lambda: stub, max_items=4, max_delay=0.01)
            first = await asyncio.gather(
                *(client.Classify(text_request(str(k), "hi")) for k in range(3))
            )
            later = await client.Classify(text_request("z", "hi"))
            await client.close()
    finally:
        await server.stop(0)
    assert len(first) == 3 and later.modality == taxonomy_pb2.MODALITY_TEXT
    assert client.batches == 1  # the one that found no ClassifyBatch; then unary calls


async def test_every_batch_in_flight_falls_back_without_classify_batch() -> None:
    """Batches sent before the first UNIMPLEMENTED answer came back fall back too: each of
    their items gets its unary answer, none the UNIMPLEMENTED error."""
    server = grpc.aio.server()
    classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(UnaryOnly(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            client = BatchingClassifierClient(lambda: stub, max_items=2, max_delay=0.01)
            # Three batches (2 + 2 + 1 items), all sent before any answer arrives.
            outcomes = await asyncio.gather(
                *(client.Classify(text_request(str(k), "hi"), timeout=30) for k in range(5)),
                return_exceptions=True,
            )
            later = await client.Classify(text_request("z", "hi"), timeout=30)
            await client.close()
    finally:
        await server.stop(0)
    assert [type(o).__name__ for o in outcomes] == ["ClassifyResponse"] * 5
    assert later.modality == taxonomy_pb2.MODALITY_TEXT
    assert client.batches == 3  # no batch after the fallback


async def test_items_with_other_deadlines_go_in_other_batches(endpoint: str) -> None:
    async with grpc.aio.insecure_channel(endpoint) as channel:
        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        client = BatchingClassifierClient(lambda: stub, max_items=8, max_delay=0.05)
        calls = [
            client.Classify(text_request(str(k), FRIENDLY), timeout=20 if k % 2 else 30)
            for k in range(6)
        ]
        answers = await asyncio.gather(*calls)
        await client.close()
    assert len(answers) == 6 and client.batches == 2  # one per deadline, 3 items each
