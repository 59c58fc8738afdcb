from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import grpc
import numpy as np
import pytest

from crossguard.consistency.config import (
    CombinationWeights,
    FusionConfig,
    dump_fusion_config,
    load_fusion_config,
)
from crossguard.consistency.fusion import FusionInputs, combination_estimate, fuse
from crossguard.consistency.parts import TextKind, TextView, combined_text, text_views
from crossguard.consistency.service import CheckInput, ConsistencyChecker
from crossguard.consistency.servicer import check_input, response_of
from crossguard.consistency.text_client import error_for
from crossguard.core.errors import DeadlineExceeded, InvalidInput, LimitExceeded, NotReady
from crossguard.core.results import (
    AudioRange,
    ClassifierResult,
    DerivedTextEvidence,
    ImageRegion,
    Modality,
    Score,
)
from crossguard.core.serving.batch_client import ItemError
from crossguard.core.taxonomy import Category
from crossguard.policy import decide, default_policy
from crossguard.policy.inputs import PolicyContext
from crossguard.policy.proto import context_from_protos
from crossguard.v1 import classifier_pb2, consistency_pb2, content_pb2, taxonomy_pb2

pytestmark = pytest.mark.unit

HATE = Category.HATE
# Weights that make the combination estimate follow the combined score closely.
CONFIG = FusionConfig(
    version="t",
    combination={"default": CombinationWeights(intercept=0.0, combined=1.0)},
    combination_margin=0.1,
)


def _result(
    modality: Modality, evidence: Sequence[object] = (), **scores: float
) -> ClassifierResult:
    return ClassifierResult(
        modality=modality,
        scores=[Score(Category.parse(k.replace("_", "/")), v, 0) for k, v in scores.items()],
        evidence=list(evidence),  # type: ignore[arg-type]
    )


def _views(*kinds: TextKind) -> list[TextView]:
    return [TextView(k, (f"{k.value}-0",), f"{k.value} text") for k in kinds]


def _signals(out: object) -> dict[str, object]:
    return {s.name: s for s in out.signals}  # type: ignore[attr-defined]


def test_single_modality_passes_through_with_no_uncertainty() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.42, violence=0.1)], CONFIG)
    assert {s.category: s.score for s in out.fused} == {HATE: 0.42, Category.VIOLENCE: 0.1}
    assert out.uncertainty[HATE] == 0.0
    assert out.signals == []
    assert out.explanation.startswith("hate 0.42 from text")


def test_a_modality_can_raise_a_category_but_none_can_hide_it() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.05), _result(Modality.IMAGE, hate=0.93)], CONFIG)
    fused = {s.category: s for s in out.fused}
    assert fused[HATE].score == pytest.approx(0.93)
    assert fused[HATE].severity == 3


def test_disagreement_when_one_flags_and_the_others_look_benign() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.05), _result(Modality.IMAGE, hate=0.93)], CONFIG)
    sig = _signals(out)["modality_disagreement/hate"]
    assert sig.value == pytest.approx(0.88)  # type: ignore[attr-defined]
    assert sig.category == HATE  # type: ignore[attr-defined]
    assert sig.detail == "image flags hate (0.93); text 0.05 look benign"  # type: ignore[attr-defined]
    # Both moderate: no one-flags-the-others-benign disagreement.
    calm = fuse([_result(Modality.TEXT, hate=0.4), _result(Modality.IMAGE, hate=0.6)], CONFIG)
    assert "modality_disagreement/hate" not in _signals(calm)


def test_harmful_combination_lifts_benign_parts() -> None:
    inputs = FusionInputs(
        results=[_result(Modality.TEXT, hate=0.1), _result(Modality.IMAGE, hate=0.15)],
        views=_views(TextKind.CAPTION, TextKind.OCR),
        combined={HATE: 0.8},
        agreement={(TextKind.CAPTION, TextKind.OCR): 0.1},
    )
    out = fuse(inputs, CONFIG)
    (detail,) = out.details
    assert detail.score == pytest.approx(0.8, abs=1e-3) and detail.combination is not None
    sig = _signals(out)["harmful_combination/hate"]
    assert sig.value == pytest.approx(0.8, abs=1e-3)  # type: ignore[attr-defined]
    assert sig.part_ids == ("caption-0", "ocr-0")  # type: ignore[attr-defined]
    assert "read together score 0.80" in detail.explanation
    # The sources disagree (parts ~0.1, combination 0.8): the fused score is uncertain.
    assert detail.uncertainty > 0.35
    agreement = _signals(out)["text_agreement/caption~ocr"]
    assert agreement.detail == (  # type: ignore[attr-defined]
        "caption vs text in the image: semantic similarity 0.10 (unrelated)"
    )


def test_benign_combination_stays_benign() -> None:
    inputs = FusionInputs(
        results=[_result(Modality.TEXT, hate=0.1), _result(Modality.AUDIO, hate=0.12)],
        views=_views(TextKind.CAPTION, TextKind.TRANSCRIPT),
        combined={HATE: 0.08},
    )
    out = fuse(inputs, CONFIG)
    assert out.fused[0].score == pytest.approx(0.12)
    assert not [s for s in out.signals if s.name.startswith("harmful_combination")]


def test_combination_weights_depend_on_the_parts_present() -> None:
    config = FusionConfig(
        version="t",
        combination={
            "default": CombinationWeights(intercept=-5.0, combined=0.0),
            "caption+ocr": CombinationWeights(intercept=5.0, combined=0.0),
        },
    )
    assert combination_estimate(config, ["ocr", "caption"], 0.1, 0.1, 0.5, None) > 0.99
    assert combination_estimate(config, ["caption", "transcript"], 0.1, 0.1, 0.5, None) < 0.01


def test_reliability_and_missing_modalities() -> None:
    config = FusionConfig(version="t", reliability={Modality.AUDIO: 0.5}, missing_uncertainty=0.3)
    out = fuse(
        FusionInputs(results=[_result(Modality.AUDIO, hate=0.8)], missing=[Modality.IMAGE]),
        config,
    )
    assert out.fused[0].score == pytest.approx(0.4)
    assert out.uncertainty[HATE] == pytest.approx(0.3)
    assert "no result from image" in out.details[0].explanation


def test_no_results_fuse_to_nothing() -> None:
    out = fuse([], CONFIG)
    assert out.fused == [] and out.signals == [] and out.explanation == "no scores to fuse"


def test_text_views_take_ocr_lines_and_transcripts_once_in_reading_order() -> None:
    image = _result(
        Modality.IMAGE,
        evidence=[
            DerivedTextEvidence("img", HATE, 0.9, "second line", ImageRegion(0, 50, 10, 10)),
            DerivedTextEvidence(
                "img", Category.VIOLENCE, 0.2, "second line", ImageRegion(0, 50, 10, 10)
            ),
            DerivedTextEvidence("img", HATE, 0.0, "first line", ImageRegion(0, 5, 10, 10)),
        ],
        hate=0.9,
    )
    audio = _result(
        Modality.AUDIO,
        evidence=[DerivedTextEvidence("clip", HATE, 0.5, "you will pay", AudioRange(0, 900))],
        hate=0.5,
    )
    views = text_views([("caption", "nice day"), ("c2", "  ")], [image, audio], max_chars=100)
    assert [(v.kind, v.part_ids, v.text) for v in views] == [
        (TextKind.CAPTION, ("caption",), "nice day"),
        (TextKind.OCR, ("img",), "first line\nsecond line"),
        (TextKind.TRANSCRIPT, ("clip",), "you will pay"),
    ]
    assert combined_text(views) == "nice day\nfirst line\nsecond line\nyou will pay"
    with pytest.raises(LimitExceeded, match="CROSSGUARD_CONSISTENCY_MAX_TEXT_CHARS"):
        text_views([("caption", "x" * 101)], [], max_chars=100)


class _Embedder:
    """Two fixed directions: texts mentioning "cat" vs everything else."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray([[1.0, 0.0] if "cat" in t else [0.0, 1.0] for t in texts])


class _FailingScorer:
    async def score(
        self, content_ids: Sequence[str], texts: Sequence[str]
    ) -> list[dict[Category, float]]:
        raise DeadlineExceeded("text service 127.0.0.1:1: DEADLINE_EXCEEDED")


async def test_checker_notes_a_skipped_check_and_still_fuses() -> None:
    checker = ConsistencyChecker(CONFIG, embedder=_Embedder(), combiner=_FailingScorer())
    image = _result(
        Modality.IMAGE,
        evidence=[DerivedTextEvidence("img", HATE, 0.0, "a cat", ImageRegion(0, 0, 1, 1))],
        hate=0.2,
    )
    out = await checker.check(
        CheckInput(
            "c1",
            [("caption", "my cat")],
            [_result(Modality.TEXT, hate=0.1), image],
            present=[Modality.TEXT, Modality.IMAGE, Modality.AUDIO],
        )
    )
    assert _signals(out)["text_agreement/caption~ocr"].value == 1.0  # type: ignore[attr-defined]
    assert "a consistency check was skipped: text service" in out.explanation
    assert out.uncertainty[HATE] >= CONFIG.missing_uncertainty  # audio part, no audio result
    with pytest.raises(InvalidInput, match="CROSSGUARD_CONSISTENCY_MAX_RESPONSES"):
        await ConsistencyChecker(CONFIG, max_results=1).check(
            CheckInput("c2", [], [_result(Modality.TEXT), _result(Modality.IMAGE)])
        )


def test_the_policy_reads_the_fusion_uncertainty_from_the_response() -> None:
    out = fuse([_result(Modality.TEXT, hate=0.05), _result(Modality.IMAGE, hate=0.93)], CONFIG)
    resp = response_of(out, [("context-fusion", "t")])
    assert resp.fused[0].explanation == out.details[0].explanation
    ctx = context_from_protos(resp)
    assert ctx.uncertainty == {HATE: pytest.approx(out.uncertainty[HATE])}
    assert [s.name for s in ctx.consistency] == ["modality_disagreement/hate"]


def test_config_files(tmp_path: Path) -> None:
    default = load_fusion_config()
    assert default.version and "default" in default.combination
    path = tmp_path / "fusion.yaml"
    dump_fusion_config(CONFIG, path, "# test\n")
    assert load_fusion_config(path) == CONFIG
    path.write_text("version: '1'\nflag_at: 2\n")
    with pytest.raises(ValueError, match=f"{path}: invalid fusion configuration"):
        load_fusion_config(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_fusion_config(tmp_path / "missing.yaml")


@dataclass(frozen=True)
class _AudioWithTranscripts(ClassifierResult):
    """A result as the audio service sends once ClassifierResult.transcripts lands."""

    transcripts: list[SimpleNamespace] = field(default_factory=list)


def test_full_transcripts_are_preferred_to_flagged_pieces() -> None:
    audio = _AudioWithTranscripts(
        Modality.AUDIO,
        [Score(HATE, 0.6, 2)],
        evidence=[DerivedTextEvidence("clip", HATE, 0.6, "you will pay", AudioRange(900, 1500))],
        transcripts=[
            SimpleNamespace(
                part_id="clip",
                segments=[
                    SimpleNamespace(text=" Nice talk. "),
                    SimpleNamespace(text="you will pay"),
                ],
            )
        ],
    )
    (view,) = text_views([], [audio], max_chars=100)
    assert (view.kind, view.text) == (TextKind.TRANSCRIPT, "Nice talk. you will pay")


def test_a_response_with_an_unknown_category_is_invalid_input() -> None:
    resp = classifier_pb2.ClassifyResponse(modality=taxonomy_pb2.MODALITY_TEXT)
    resp.scores.add(category=999, score=0.5)
    with pytest.raises(InvalidInput, match="unreadable classifier response"):
        check_input(consistency_pb2.CheckRequest(responses=[resp]))


def test_informational_categories_raise_no_signals_and_no_uncertainty_escalation() -> None:
    results = [
        _result(Modality.TEXT, profanity=0.02, hate=0.05),
        _result(Modality.IMAGE, profanity=0.9, hate=0.93),
    ]
    out = fuse(results, CONFIG)
    assert {s.name for s in out.signals} == {"modality_disagreement/hate"}
    assert out.uncertainty[Category.PROFANITY] > 0.35  # reported all the same
    # The default policy acts on hate's uncertainty, not on profanity's (it sets no thresholds).
    context = PolicyContext(uncertainty=out.uncertainty)
    d = decide(
        default_policy(), content_pb2.ContentItem(), results, [], fused=out.fused, context=context
    )
    rules = {h.rule for h in d.hits}
    assert "uncertainty.estimate:hate" in rules
    assert "uncertainty.estimate:profanity" not in rules


def test_text_service_status_codes_map_to_domain_errors() -> None:
    endpoint = "text:50051"
    refused = error_for(endpoint, ItemError(grpc.StatusCode.INVALID_ARGUMENT, "too long"))
    assert isinstance(refused, InvalidInput) and "refused" in str(refused)
    late = error_for(endpoint, ItemError(grpc.StatusCode.DEADLINE_EXCEEDED, ""))
    assert isinstance(late, DeadlineExceeded)
    down = error_for(endpoint, ItemError(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    assert isinstance(down, NotReady) and not isinstance(down, InvalidInput)
    assert str(down) == f"combination: text service {endpoint}: UNAVAILABLE connection refused"
