"""The framing signal: one text frames the people another names (crossguard.consistency.framing)
and fusion's harmful_framing/<category> signal, with plain function calls."""

from __future__ import annotations

import numpy as np
import pytest

from crossguard.consistency.config import FusionConfig
from crossguard.consistency.framing import Framing, best_framing
from crossguard.consistency.fusion import FusionInputs, fuse
from crossguard.consistency.parts import TextKind, TextView
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category
from crossguard.policy import Action, decide, default_policy
from crossguard.policy.inputs import ConsistencySignal, PolicyContext

pytestmark = pytest.mark.unit

CONFIG = FusionConfig(version="t")
MODEL = ("framing-head", "1")
CAPTION, OCR, TRANSCRIPT = TextKind.CAPTION, TextKind.OCR, TextKind.TRANSCRIPT


def test_the_best_pair_is_people_in_one_text_framed_by_another() -> None:
    # rows: names_people, frames_as_harm
    probs = np.array([[0.02, 0.9], [0.95, 0.1], [0.5, 0.3]])
    got = best_framing([CAPTION, OCR, TRANSCRIPT], probs, MODEL)
    assert got is not None
    assert (got.people, got.frame) == (OCR, CAPTION)
    assert got.value == pytest.approx(0.95 * 0.9)
    # A text that both names people and frames them is not a pair with itself.
    alone = best_framing([CAPTION, OCR], np.array([[0.9, 0.9], [0.01, 0.01]]), MODEL)
    assert alone is not None and alone.value == pytest.approx(0.9 * 0.01)
    assert best_framing([CAPTION], np.array([[0.9, 0.9]]), MODEL) is None


def _inputs(framing: Framing | None, hate_parts: tuple[float, float] = (0.1, 0.15)) -> FusionInputs:
    return FusionInputs(
        results=[
            ClassifierResult(Modality.TEXT, [Score(Category.HATE, hate_parts[0], 0)]),
            ClassifierResult(Modality.IMAGE, [Score(Category.HATE, hate_parts[1], 0)]),
        ],
        views=[
            TextView(CAPTION, ("caption",), "a caption"),
            TextView(OCR, ("image-0",), "text in the image"),
        ],
        framing=framing,
    )


def _framing(value: float) -> Framing:
    return Framing(value, OCR, CAPTION, 0.9, value / 0.9, MODEL)


def test_fusion_raises_harmful_framing_and_says_what_framed_whom() -> None:
    out = fuse(_inputs(_framing(0.72)), CONFIG)
    (sig,) = [s for s in out.signals if s.name.startswith("harmful_framing/")]
    assert sig.name == "harmful_framing/hate" and sig.category == Category.HATE
    assert sig.value == pytest.approx(0.72)
    assert sig.part_ids == ("caption", "image-0")
    assert sig.modalities == (Modality.TEXT, Modality.IMAGE)
    assert sig.detail == (
        "the caption frames the people the text in the image names as hate (framing 0.72 = "
        "names people 0.90 x frames as harm 0.80, framing-head/1)"
    )
    assert sig.detail in out.explanation
    # The signal changes no fused score: the policy decides what it does.
    assert {s.category: s.score for s in out.fused} == {Category.HATE: pytest.approx(0.15)}


def test_no_framing_signal_below_its_floor_when_a_part_already_flags_or_without_a_head() -> None:
    def framing_signals(inputs: FusionInputs) -> list[str]:
        return [s.name for s in fuse(inputs, CONFIG).signals if s.name.startswith("harmful_f")]

    assert framing_signals(_inputs(_framing(CONFIG.framing_signal_at - 0.01))) == []
    assert framing_signals(_inputs(_framing(0.8), hate_parts=(0.1, 0.9))) == []
    assert framing_signals(_inputs(None)) == []
    # The category is configuration.
    config = CONFIG.model_copy(update={"framing_category": Category.HARASSMENT})
    names = [s.name for s in fuse(_inputs(_framing(0.5)), config).signals]
    assert "harmful_framing/harassment" in names


@pytest.mark.parametrize(("value", "action"), [(0.3, Action.ESCALATE), (0.06, Action.ALLOW)])
def test_the_default_policy_escalates_on_harmful_framing_at_its_cut(
    value: float, action: Action
) -> None:
    policy = default_policy()
    (rule,) = [r for r in policy.escalation.inconsistency if r.signal == "harmful_framing/*"]
    assert rule.at_least is not None and 0.06 < rule.at_least < 0.3
    out = fuse(_inputs(_framing(value)), CONFIG)
    context = PolicyContext(
        consistency=[
            ConsistencySignal(s.name, s.value, s.modalities, s.detail) for s in out.signals
        ]
    )

    class Item:
        tenant = ""
        surface = "comment"

    got = decide(policy, Item(), _inputs(None).results, [], fused=out.fused, context=context)
    assert got.action == action
