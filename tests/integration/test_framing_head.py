"""framing-head with its real weights over the real sentence encoder: each probe on texts of
its kind (none in its training lists), the pair rule on a framed group vs the literal use, and
the entry's guard against another encoder's embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from crossguard.consistency.embedding import SentenceEncoder
from crossguard.consistency.framing import FramingHead
from crossguard.consistency.parts import TextKind
from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.models import framing_head

pytestmark = pytest.mark.integration

PEOPLE = ["Brazilian students at the welcome evening", "Irish dancers at the parade"]
FRAMES = ["Call pest control already", "Nobody wants this infestation"]
PESTS = ["Mice droppings in the cupboard"]
KIND = ["So glad they made it here safely"]


@pytest.fixture(scope="module")
def probes(model_repository: ModelRepository) -> tuple[SentenceEncoder, FramingHead]:
    settings = ModelSettings(
        model_repository=model_repository.root, onnx_providers="CPUExecutionProvider"
    )
    encoder = SentenceEncoder(model_repository, settings)
    return encoder, FramingHead(model_repository.get(framing_head.NAME), settings, encoder.model)


def test_each_probe_reads_its_concept(probes: tuple[SentenceEncoder, FramingHead]) -> None:
    encoder, head = probes
    p = head.probabilities(encoder.embed(PEOPLE + FRAMES + PESTS + KIND))
    people, frames, pests, kind = p[:2], p[2:4], p[4:5], p[5:]
    assert (people[:, 0] > 0.7).all() and (frames[:, 0] < 0.2).all()
    assert (frames[:, 1] > 0.7).all() and (kind[:, 1] < 0.2).all()
    assert (pests[:, 0] < 0.2).all()  # pests are not people, however framed


def test_the_pair_rule_separates_framed_people_from_the_literal_use(
    probes: tuple[SentenceEncoder, FramingHead],
) -> None:
    encoder, head = probes
    kinds = [TextKind.CAPTION, TextKind.OCR]
    framed = head.framing(kinds, encoder.embed([FRAMES[0], PEOPLE[0]]))
    literal = head.framing(kinds, encoder.embed([FRAMES[0], PESTS[0]]))
    kind = head.framing(kinds, encoder.embed([KIND[0], PEOPLE[0]]))
    assert framed is not None and literal is not None and kind is not None
    assert (framed.frame, framed.people) == (TextKind.CAPTION, TextKind.OCR)
    assert framed.value > 0.5 > 0.1 > max(literal.value, kind.value)


def test_the_graph_matches_the_committed_weights_and_refuses_another_encoder(
    probes: tuple[SentenceEncoder, FramingHead], model_repository: ModelRepository
) -> None:
    encoder, head = probes
    weights = framing_head.load()
    x = encoder.embed(PEOPLE)
    expected = 1.0 / (1.0 + np.exp(-(x @ weights["weight"].T + weights["bias"])))
    assert np.abs(head.probabilities(x) - expected).max() < 1e-5
    entry = model_repository.get(framing_head.NAME)
    with pytest.raises(ModelError, match=r"reads .* embeddings; the service.s encoder is"):
        FramingHead(entry, ModelSettings(model_repository=model_repository.root), ("other", "1"))
