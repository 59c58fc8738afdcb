"""Image vs caption agreement (CLIP): the signal fusion raises from it, the checker comparing
the vision results' image embeddings with the caption, and the embeddings' proto round trip."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from crossguard.consistency.clip_caption import ClipCaptionScorer
from crossguard.consistency.config import FusionConfig
from crossguard.consistency.fusion import FusionInputs, ImageCaption, fuse
from crossguard.consistency.parts import TextKind, TextView
from crossguard.consistency.service import CheckInput, ConsistencyChecker
from crossguard.core.errors import ModelError
from crossguard.core.proto_convert import result_from_proto, result_to_proto
from crossguard.core.results import ClassifierResult, Modality, PartEmbedding, Score
from crossguard.core.taxonomy import Category

pytestmark = pytest.mark.unit

CONFIG = FusionConfig(version="t")
MODEL = ("tiny-clip", "1")


def _result(modality: Modality, hate: float, *embeds: PartEmbedding) -> ClassifierResult:
    return ClassifierResult(modality, [Score(Category.HATE, hate, 0)], embeddings=list(embeds))


def _unit(*values: float) -> tuple[float, ...]:
    v = np.asarray(values, dtype=np.float64)
    return tuple(float(x) for x in v / np.linalg.norm(v))


def _inputs(ic: ImageCaption | None, text_hate: float) -> FusionInputs:
    return FusionInputs(
        results=[_result(Modality.TEXT, text_hate), _result(Modality.IMAGE, 0.05)],
        views=[TextView(TextKind.CAPTION, ("c",), "a caption")],
        image_caption=ic,
    )


def test_low_agreement_is_a_signal_and_explains_a_flagged_item() -> None:
    ic = ImageCaption(MODEL, (("img", 0.08),), ("c",))
    result = fuse(_inputs(ic, 0.9), CONFIG)
    (sig,) = [s for s in result.signals if s.name == "image_caption_agreement"]
    assert sig.value == pytest.approx(0.08)
    assert sig.part_ids == ("img", "c")
    assert sig.modalities == (Modality.IMAGE, Modality.TEXT)
    assert sig.detail == "image vs caption (tiny-clip:1): similarity 0.08 (unrelated)"
    assert result.explanation.endswith(
        "; the caption does not match image img (CLIP similarity 0.08)"
    )
    # A cue for reviewers only: the fused scores are those without the signal.
    assert result.fused == fuse(_inputs(None, 0.9), CONFIG).fused


def test_agreement_of_several_images_is_the_least_and_unflagged_items_say_nothing() -> None:
    ic = ImageCaption(MODEL, (("a", 0.31), ("b", 0.12)), ("c",))
    assert ic.value == pytest.approx(0.12) and ic.least == "b"
    result = fuse(_inputs(ic, 0.1), CONFIG)
    (sig,) = [s for s in result.signals if s.name == "image_caption_agreement"]
    assert sig.detail.endswith("(unrelated); per image: a 0.31, b 0.12")
    assert "does not match" not in result.explanation
    related = fuse(_inputs(ImageCaption(MODEL, (("a", 0.3),), ("c",)), 0.9), CONFIG)
    assert "(related)" in related.signals[0].detail
    assert "does not match" not in related.explanation


class AxisEmbedder:
    """A stand-in text tower over 3 dimensions (the checker's routing and the comparison are
    under test here; the real tower is in tests/integration/test_consistency_clip.py)."""

    model = MODEL

    def __init__(self, vectors: dict[str, tuple[float, ...]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float32)

    def close(self) -> None:
        pass


async def test_checker_compares_image_embeddings_with_the_caption() -> None:
    encoder = AxisEmbedder({"a dog": _unit(1, 0, 0)})
    checker = ConsistencyChecker(CONFIG, image_caption=ClipCaptionScorer(encoder))
    image = _result(
        Modality.IMAGE,
        0.8,
        PartEmbedding("dog.png", MODEL, _unit(1, 0, 0)),
        PartEmbedding("gun.png", MODEL, _unit(0.6, 0.8, 0)),
        PartEmbedding("other.png", ("big-clip", "2"), _unit(0, 0, 1)),
    )
    result = await checker.check(
        CheckInput("c1", [("cap", "a dog")], [image], present=[Modality.IMAGE, Modality.TEXT])
    )
    (sig,) = [s for s in result.signals if s.name == "image_caption_agreement"]
    assert sig.value == pytest.approx(0.6, abs=1e-6)  # the least agreeing comparable image
    assert sig.part_ids == ("dog.png", "gun.png", "cap")
    assert "per image: dog.png 1.00, gun.png 0.60" in sig.detail
    assert encoder.calls == [["a dog"]]

    # Only another model's embeddings: nothing to compare, and the explanation says why.
    other = _result(Modality.IMAGE, 0.8, PartEmbedding("x", ("big-clip", "2"), _unit(1, 0, 0)))
    skipped = await checker.check(CheckInput("c2", [("cap", "a dog")], [other]))
    assert not [s for s in skipped.signals if s.name == "image_caption_agreement"]
    assert "image vs caption skipped: the images were embedded by big-clip:2, not tiny-clip:1" in (
        skipped.explanation
    )
    # No caption: no call, no signal.
    none = await checker.check(CheckInput("c3", [], [image]))
    assert not [s for s in none.signals if s.name == "image_caption_agreement"]
    assert len(encoder.calls) == 1
    await checker.close()


async def test_mismatched_dimensions_are_a_model_error() -> None:
    scorer = ClipCaptionScorer(AxisEmbedder({"a dog": _unit(1, 0, 0)}))
    with pytest.raises(ModelError, match="2 dimensions; the text tower's has 3"):
        await scorer.agreement([PartEmbedding("p", MODEL, _unit(1, 1))], "a dog")


def test_embeddings_survive_the_proto_round_trip() -> None:
    emb = PartEmbedding("p", MODEL, (0.25, -0.5, 0.75))
    back = result_from_proto(result_to_proto(_result(Modality.IMAGE, 0.1, emb)))
    assert back.embeddings == [emb]
