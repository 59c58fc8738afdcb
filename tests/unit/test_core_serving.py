"""The classifier-serving template (crossguard.core.serving) with a modality of its own: a
model, a classifier subclass and a part parser are all a modality writes; lifecycle,
batching, the servicer's error mapping and the settings come from the template (no I/O:
the servicer is called directly)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import pytest
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded, NotReady
from crossguard.core.results import ClassifierResult, Modality, Score, TextSpanEvidence
from crossguard.core.serving.classifier import BatchedClassifier
from crossguard.core.serving.servicer import ClassifierServicer, part_id
from crossguard.core.serving.serving_settings import ServerSettings, ServingSettings
from crossguard.core.settings_doc import env_name
from crossguard.core.taxonomy import Category, severity
from crossguard.v1 import classifier_pb2, content_pb2

if TYPE_CHECKING:
    from conftest import MetricsCapture

pytestmark = pytest.mark.unit

Probabilities = dict[Category, float]


class ShoutSettings(ServingSettings):
    model_config = SettingsConfigDict(env_prefix="CROSSGUARD_SHOUT_", frozen=True, extra="ignore")
    batch_max: int = Field(default=4, ge=1)  # a modality may change a shared default


class ShoutModel:
    """A Model[str, Probabilities]: the share of upper-case letters is the harassment score."""

    name = "shout"
    version = "1"

    def __init__(self) -> None:
        self.loaded = False
        self.batches: list[int] = []

    @property
    def categories(self) -> Sequence[Category]:
        return [Category.HARASSMENT]

    @property
    def thresholds(self) -> dict[Category, float]:
        return {Category.HARASSMENT: 0.5}

    @property
    def model_infos(self) -> list[tuple[str, str]]:
        return [(self.name, self.version)]

    def load(self) -> None:
        self.loaded = True

    def ready(self) -> bool:
        return self.loaded

    def predict(self, batch: Sequence[str]) -> list[Probabilities]:
        self.batches.append(len(batch))
        out = []
        for text in batch:
            letters = [c for c in text if c.isalpha()]
            upper = sum(c.isupper() for c in letters) / max(1, len(letters))
            out.append({Category.HARASSMENT: upper})
        return out

    def close(self) -> None:
        self.loaded = False


Parts = list[tuple[str, str]]


class ShoutClassifier(BatchedClassifier[Parts, str, Probabilities]):
    async def _classify(
        self, content_id: str, request: Parts, max_evidence: int
    ) -> ClassifierResult:
        outputs = await self.predict([text for _, text in request])
        best = max(range(len(request)), key=lambda k: outputs[k][Category.HARASSMENT])
        score = outputs[best][Category.HARASSMENT]
        evidence = []
        if score >= self.threshold(Category.HARASSMENT):
            pid, text = request[best]
            evidence.append(TextSpanEvidence(pid, Category.HARASSMENT, score, 0, len(text), text))
        return ClassifierResult(
            Modality.TEXT,
            [Score(Category.HARASSMENT, score, severity(score))],
            evidence=list(evidence),
            models=list(self.model_infos),
        )


async def parse_shout(request: classifier_pb2.ClassifyRequest) -> Parts:
    """The modality's part parser: text parts only; the work goes off the event loop, as a
    parser that reads media would."""

    def parse() -> Parts:
        parts = []
        for index, part in enumerate(request.parts):
            if part.WhichOneof("kind") != "text":
                raise InvalidInput(f"part {part_id(part, index)!r} is not text")
            parts.append((part_id(part, index), part.text))
        if not parts:
            raise InvalidInput("no parts")
        return parts

    return await asyncio.to_thread(parse)


def request(content_id: str, *texts: str) -> classifier_pb2.ClassifyRequest:
    return classifier_pb2.ClassifyRequest(
        content_id=content_id, parts=[content_pb2.ContentPart(text=t) for t in texts]
    )


async def test_a_modality_is_a_model_a_classifier_and_a_parser() -> None:
    model = ShoutModel()
    classifier = ShoutClassifier(model, ShoutSettings(), Modality.TEXT)
    servicer = ClassifierServicer(classifier, parse_shout, 8, asyncio.Event())
    with pytest.raises(NotReady, match="text model is not loaded yet"):
        await servicer.classify(request("c0", "hello"))

    await classifier.start()
    assert classifier.ready() and classifier.threshold(Category.HARASSMENT) == 0.5
    assert classifier.threshold(Category.SPAM) == classifier.default_threshold
    response = await servicer.classify(request("c1", "quiet words", "STOP THAT NOW"))
    assert [(s.category, s.score) for s in response.scores] == [(Category.HARASSMENT.proto, 1.0)]
    assert [(e.part_id, e.span.text) for e in response.evidence] == [("1", "STOP THAT NOW")]
    assert [(m.name, m.version) for m in response.models] == [("shout", "1")]
    assert sum(model.batches) == 2 and max(model.batches) <= 4  # through the micro-batcher

    with pytest.raises(InvalidInput, match="not text"):
        await servicer.classify(
            classifier_pb2.ClassifyRequest(
                parts=[content_pb2.ContentPart(part_id="m", media=content_pb2.Media())]
            )
        )

    await classifier.close()
    assert not classifier.ready() and not model.loaded  # the classifier owned the model


async def test_a_stream_answers_each_request_or_its_error_in_order() -> None:
    classifier = ShoutClassifier(ShoutModel(), ShoutSettings(), Modality.TEXT)
    await classifier.start()
    servicer = ClassifierServicer(classifier, parse_shout, 2, asyncio.Event())

    async def requests() -> AsyncIterator[bytes]:
        for r in (request("a", "fine"), request("b"), request("c", "LOUD")):
            yield classifier_pb2.ClassifyStreamRequest(request=r).SerializeToString()
        yield b"\xff not a message"

    answers = [a async for a in servicer.classify_stream(requests(), context=None)]  # type: ignore[arg-type]
    await classifier.close()
    assert [a.content_id for a in answers] == ["a", "b", "c", ""]
    assert [a.WhichOneof("outcome") for a in answers] == ["response", "error", "response", "error"]
    assert answers[1].error.code == 3 and "no parts" in answers[1].error.message  # INVALID_ARGUMENT
    assert answers[3].error.code == 3


def test_shared_settings_read_and_name_the_modality_s_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CROSSGUARD_SHOUT_BATCH_WORKERS", "3")
    settings = ShoutSettings()
    assert (settings.batch_workers, settings.batch_max) == (3, 4)
    for name, info in ShoutSettings.model_fields.items():
        assert (info.description or "").startswith(env_name(ShoutSettings, name)), name
    bound = ServerSettings(settings).with_port(5555)
    assert bound.grpc.port == 5555 and bound.service is settings


class GatedShoutModel(ShoutModel):
    """ShoutModel whose calls wait for `gate` (so callers queue up) and remember their texts."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def predict(self, batch: Sequence[str]) -> list[Probabilities]:
        self.gate.wait(timeout=10)
        self.calls.append(list(batch))
        return super().predict(batch)


def batch_request(*requests: classifier_pb2.ClassifyRequest) -> classifier_pb2.ClassifyBatchRequest:
    return classifier_pb2.ClassifyBatchRequest(requests=list(requests))


async def test_a_batch_answers_each_item_with_its_result_or_its_own_error(
    metrics_capture: Callable[[], MetricsCapture],
) -> None:
    capture = metrics_capture()
    metrics = ClassifierMetrics("text", capture.meter())
    classifier = ShoutClassifier(ShoutModel(), ShoutSettings(), Modality.TEXT, metrics=metrics)
    servicer = ClassifierServicer(classifier, parse_shout, 8, asyncio.Event(), 4)
    not_ready = await servicer.classify_batch(batch_request(request("x", "hi")))
    assert not_ready.results[0].error.code == 14  # UNAVAILABLE, as a unary call

    await classifier.start()
    media = classifier_pb2.ClassifyRequest(
        content_id="m", parts=[content_pb2.ContentPart(part_id="m0", media=content_pb2.Media())]
    )
    response = await servicer.classify_batch(
        batch_request(request("a", "calm"), request("b"), media, request("d", "LOUD"))
    )
    assert [r.content_id for r in response.results] == ["a", "b", "m", "d"]
    outcomes = [r.WhichOneof("outcome") for r in response.results]
    assert outcomes == ["response", "error", "error", "response"]
    assert response.results[1].error.code == 3 and "no parts" in response.results[1].error.message
    assert "not text" in response.results[2].error.message
    assert response.results[3].response.scores[0].score == 1.0
    assert response.results[0].response.scores[0].score == 0.0

    with pytest.raises(LimitExceeded, match="BATCH_CALL_MAX_ITEMS"):
        await servicer.classify_batch(batch_request(*(request(str(k), "x") for k in range(5))))
    await classifier.close()

    points = capture.points()
    # Two calls reached the classifier (1 item, then the 2 items that parsed): each item is a
    # request with its own outcome.
    assert [v for _, v in points["crossguard.classifier.call.items"]] == [2]
    assert [v for _, v in points["crossguard.classifier.call.items.sum"]] == [3]
    by_outcome = {a["outcome"]: v for a, v in points["crossguard.classifier.duration"]}
    assert by_outcome == {"not_ready": 1, "ok": 2, "invalid": 2}


async def test_batches_from_two_callers_meet_in_one_model_call() -> None:
    model = GatedShoutModel()
    classifier = ShoutClassifier(model, ShoutSettings(batch_max=16), Modality.TEXT)
    await classifier.start()
    servicer = ClassifierServicer(classifier, parse_shout, 8, asyncio.Event())
    plug = asyncio.ensure_future(classifier.predict(["plug"]))  # holds the model's one worker
    await asyncio.sleep(0.05)
    first = asyncio.ensure_future(
        servicer.classify_batch(batch_request(request("a1", "one"), request("a2", "TWO")))
    )
    second = asyncio.ensure_future(
        servicer.classify_batch(batch_request(request("b1", "three"), request("b2", "FOUR")))
    )
    for _ in range(1000):  # both batches wait behind the plug
        if classifier.batcher.queued >= 4:
            break
        await asyncio.sleep(0.01)
    model.gate.set()
    answers = await asyncio.gather(first, second, plug)
    await classifier.close()
    assert model.calls[1] == ["one", "TWO", "three", "FOUR"]  # one model call for both
    assert [r.response.scores[0].score for r in answers[0].results] == [0.0, 1.0]
    assert [r.response.scores[0].score for r in answers[1].results] == [0.0, 1.0]


async def test_a_cancelled_batch_leaves_its_model_work_undone() -> None:
    """The deadline covers the batch: when it passes, the call is cancelled and the items it
    queued are dropped before they reach the model."""
    model = GatedShoutModel()
    classifier = ShoutClassifier(model, ShoutSettings(batch_max=16), Modality.TEXT)
    await classifier.start()
    servicer = ClassifierServicer(classifier, parse_shout, 8, asyncio.Event())
    plug = asyncio.ensure_future(classifier.predict(["plug"]))
    await asyncio.sleep(0.05)
    late = batch_request(request("a", "one"), request("b", "two"))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(servicer.classify_batch(late), timeout=0.1)
    model.gate.set()
    await plug
    await classifier.close()
    assert model.calls == [["plug"]]
