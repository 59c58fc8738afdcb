"""Context-aware fusion of per-modality scores, and the consistency signals.

Per category:
- every modality's score is weighted by its reliability (configuration);
- when an item has two or more texts (caption, OCR, transcript) and they were also scored read
  together, a fitted logistic combination estimate uses the highest and second-highest part
  scores, the combined score and the texts' semantic agreement (weights per set of parts
  present, configuration);
- the fused score is the higher of the highest part and the combination estimate: a modality
  can raise a category, none can hide it;
- the uncertainty is the reliability-weighted spread of the estimates around the fused score,
  plus a fixed amount per modality that should have answered and did not.

Signals (docs/fusion.md): text_agreement/<kind>~<kind>, image_caption_agreement,
modality_disagreement/<category>, harmful_combination/<category>, harmful_framing/<category>
(one text frames the people another names: crossguard.consistency.framing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from crossguard.consistency.config import FusionConfig
from crossguard.consistency.framing import Framing
from crossguard.consistency.parts import KIND_WORDS, TextKind, TextView
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.taxonomy import Category, severity

_EPS = 1e-4


@dataclass(frozen=True)
class Signal:
    name: str
    value: float
    modalities: tuple[Modality, ...]
    detail: str = ""
    part_ids: tuple[str, ...] = ()
    category: Category | None = None


@dataclass(frozen=True)
class FusedCategory:
    category: Category
    score: float
    uncertainty: float
    explanation: str
    # The combination estimate (None: not computed: fewer than two texts or no combined score).
    combination: float | None = None


@dataclass(frozen=True)
class ImageCaption:
    """How the item's images agree with its caption in a CLIP model's space: each image's
    cosine similarity to the caption, clipped to [0, 1]; `value` is the lowest (the image that
    agrees least)."""

    model: tuple[str, str]
    per_image: tuple[tuple[str, float], ...]
    caption_part_ids: tuple[str, ...]

    @property
    def value(self) -> float:
        return min(v for _, v in self.per_image)

    @property
    def least(self) -> str:
        return min(self.per_image, key=lambda kv: kv[1])[0]


@dataclass(frozen=True)
class FusionInputs:
    results: Sequence[ClassifierResult]
    views: Sequence[TextView] = ()
    # Scores of the item's texts read together (None: fewer than two texts, or not scored).
    combined: Mapping[Category, float] | None = None
    # Semantic similarity in [0, 1] per pair of text kinds.
    agreement: Mapping[tuple[TextKind, TextKind], float] = field(default_factory=dict)
    # Image vs caption agreement (CLIP), when configured and the item has both.
    image_caption: ImageCaption | None = None
    # Modalities the item has parts of but no result for.
    missing: Sequence[Modality] = ()
    # The framing head's strongest pair of texts (None: not configured or fewer than two texts).
    framing: Framing | None = None


@dataclass(frozen=True)
class FusionResult:
    fused: list[Score]
    signals: list[Signal]
    details: list[FusedCategory] = field(default_factory=list)
    explanation: str = ""

    @property
    def uncertainty(self) -> dict[Category, float]:
        return {d.category: d.uncertainty for d in self.details}


def logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def mean_agreement(agreement: Mapping[tuple[TextKind, TextKind], float]) -> float | None:
    return sum(agreement.values()) / len(agreement) if agreement else None


def combination_estimate(
    config: FusionConfig,
    kinds: list[str],
    top: float,
    second: float,
    combined: float,
    agreement: float | None,
) -> float:
    """The fitted combination estimate of one category (see CombinationWeights)."""
    w = config.weights_for(kinds)
    z = (
        w.intercept
        + w.max_part * logit(top)
        + w.second_part * logit(second)
        + w.combined * logit(combined)
        + w.agreement * (0.5 if agreement is None else agreement)
    )
    return sigmoid(z)


def _modality_scores(
    results: Sequence[ClassifierResult], config: FusionConfig
) -> dict[Category, dict[Modality, float]]:
    out: dict[Category, dict[Modality, float]] = {}
    for r in results:
        weight = config.reliability_of(r.modality)
        for s in r.scores:
            by_mod = out.setdefault(s.category, {})
            by_mod[r.modality] = max(by_mod.get(r.modality, 0.0), min(1.0, s.score * weight))
    return out


def _names(mods: Sequence[Modality]) -> str:
    return ", ".join(m.value for m in mods)


def _agreement_signals(inputs: FusionInputs, config: FusionConfig) -> list[Signal]:
    by_kind = {v.kind: v for v in inputs.views}
    out: list[Signal] = []
    for (a, b), value in sorted(inputs.agreement.items()):
        va, vb = by_kind[a], by_kind[b]
        verdict = "unrelated" if value < config.unrelated_below else "related"
        out.append(
            Signal(
                name=f"text_agreement/{a.value}~{b.value}",
                value=value,
                modalities=tuple(dict.fromkeys((va.modality, vb.modality))),
                detail=f"{KIND_WORDS[a]} vs {KIND_WORDS[b]}: semantic similarity {value:.2f} "
                f"({verdict})",
                part_ids=va.part_ids + vb.part_ids,
            )
        )
    ic = inputs.image_caption
    if ic is not None:
        verdict = "unrelated" if ic.value < config.image_caption_unrelated_below else "related"
        each = ", ".join(f"{p} {v:.2f}" for p, v in ic.per_image)
        out.append(
            Signal(
                name="image_caption_agreement",
                value=ic.value,
                modalities=(Modality.IMAGE, Modality.TEXT),
                detail=f"image vs caption ({ic.model[0]}:{ic.model[1]}): similarity "
                f"{ic.value:.2f} ({verdict})"
                + (f"; per image: {each}" if len(ic.per_image) > 1 else ""),
                part_ids=tuple(p for p, _ in ic.per_image) + ic.caption_part_ids,
            )
        )
    return out


def fuse(inputs: FusionInputs | Sequence[ClassifierResult], config: FusionConfig) -> FusionResult:
    if not isinstance(inputs, FusionInputs):
        inputs = FusionInputs(results=inputs)
    per_cat = _modality_scores(inputs.results, config)
    combined = inputs.combined if len(inputs.views) >= 2 else None
    kinds = [v.kind.value for v in inputs.views]
    agreement = mean_agreement(inputs.agreement)
    text_mods = tuple(dict.fromkeys(v.modality for v in inputs.views))
    all_parts = tuple(p for v in inputs.views for p in v.part_ids)
    categories = sorted(set(per_cat) | set(combined or {}), key=lambda c: c.value)

    signals = _agreement_signals(inputs, config)
    details: list[FusedCategory] = []
    for cat in categories:
        by_mod = per_cat.get(cat, {})
        ranked = sorted(by_mod.items(), key=lambda kv: (-kv[1], kv[0].value))
        top_mod, top = ranked[0] if ranked else (None, 0.0)
        second = ranked[1][1] if len(ranked) > 1 else 0.0
        comb_score = combined.get(cat) if combined is not None else None
        estimate = (
            combination_estimate(config, kinds, top, second, comb_score, agreement)
            if comb_score is not None
            else None
        )
        fused = max(top, estimate) if estimate is not None else top

        # Uncertainty: how far the sources' estimates lie from the fused score.
        sources = [(v, config.reliability_of(m)) for m, v in by_mod.items()]
        if comb_score is not None:
            sources.append((comb_score, 1.0))
        total = sum(w for _, w in sources) or 1.0
        spread = math.sqrt(sum(w * (v - fused) ** 2 for v, w in sources) / total)
        uncertainty = min(1.0, spread + config.missing_uncertainty * len(inputs.missing))

        lifted = estimate is not None and estimate > top
        if lifted and estimate is not None and comb_score is not None:
            read = " + ".join(KIND_WORDS[v.kind] for v in inputs.views)
            why = (
                f"{cat.value} {fused:.2f}: the {read}"
                f" read together score {comb_score:.2f} while each part alone is at most "
                f"{top:.2f}" + (f" ({top_mod.value})" if top_mod else "")
            )
        elif top_mod is not None:
            others = [f"{m.value} {v:.2f}" for m, v in ranked[1:]]
            why = f"{cat.value} {fused:.2f} from {top_mod.value}" + (
                f"; {', '.join(others)}" if others else ""
            )
        else:
            why = f"{cat.value} {fused:.2f}"
        if inputs.missing:
            why += f"; no result from {_names(inputs.missing)}"
        details.append(FusedCategory(cat, fused, uncertainty, why, estimate))

        if cat in config.informational:
            continue
        # One modality flags, every other looks benign.
        if len(ranked) >= 2 and top >= config.flag_at and second < config.benign_below:
            assert top_mod is not None
            signals.append(
                Signal(
                    name=f"modality_disagreement/{cat.value}",
                    value=top - second,
                    modalities=tuple(m for m, _ in ranked),
                    detail=f"{top_mod.value} flags {cat.value} ({top:.2f}); "
                    + ", ".join(f"{m.value} {v:.2f}" for m, v in ranked[1:])
                    + " look benign",
                    part_ids=all_parts,
                    category=cat,
                )
            )
        # Benign parts, harmful combination.
        if (
            estimate is not None
            and top < config.flag_at
            and estimate - top >= config.combination_margin
        ):
            signals.append(
                Signal(
                    name=f"harmful_combination/{cat.value}",
                    value=estimate,
                    modalities=text_mods,
                    detail=f"each part alone looks benign for {cat.value} (at most {top:.2f}) "
                    f"but read together they score {comb_score:.2f} (estimate {estimate:.2f})",
                    part_ids=all_parts,
                    category=cat,
                )
            )

    framing = _framing_signal(inputs, config, per_cat)
    if framing is not None:
        signals.append(framing)
    fused_scores = [Score(d.category, d.score, severity(d.score)) for d in details]
    summary = _summary(details, inputs, config)
    if framing is not None:
        summary += f"; {framing.detail}"
    return FusionResult(fused_scores, signals, details, summary)


def _framing_signal(
    inputs: FusionInputs, config: FusionConfig, per_cat: dict[Category, dict[Modality, float]]
) -> Signal | None:
    """harmful_framing/<category> when one text frames the people another names and no part
    flags the category by itself (then the part's own score already acts)."""
    fr = inputs.framing
    cat = config.framing_category
    if fr is None or fr.value < config.framing_signal_at:
        return None
    if max(per_cat.get(cat, {}).values(), default=0.0) >= config.flag_at:
        return None
    by_kind = {v.kind: v for v in inputs.views}
    people, frame = by_kind.get(fr.people), by_kind.get(fr.frame)
    if people is None or frame is None:
        return None
    return Signal(
        name=f"harmful_framing/{cat.value}",
        value=fr.value,
        modalities=tuple(dict.fromkeys((frame.modality, people.modality))),
        # Scores and kinds only, no quoted text: details travel into decisions and statements
        # of reasons, which must not carry the content.
        detail=f"the {KIND_WORDS[fr.frame]} frames the people the {KIND_WORDS[fr.people]} "
        f"names as {cat.value} (framing {fr.value:.2f} = names people {fr.people_score:.2f} x "
        f"frames as harm {fr.frame_score:.2f}, {fr.model[0]}/{fr.model[1]})",
        part_ids=frame.part_ids + people.part_ids,
        category=cat,
    )


def _summary(details: Sequence[FusedCategory], inputs: FusionInputs, config: FusionConfig) -> str:
    if not details:
        return "no scores to fuse"
    harmful = [d for d in details if d.category != Category.PROFANITY] or list(details)
    top = max(harmful, key=lambda d: d.score)
    mods = sorted({r.modality.value for r in inputs.results})
    out = f"{top.explanation} (uncertainty {top.uncertainty:.2f}; modalities: {', '.join(mods)})"
    ic = inputs.image_caption
    # A reviewer's cue, not a score change: a flagged item whose caption does not describe
    # its image (a caption that turns an image's meaning, or hides what it shows).
    if (
        ic is not None
        and ic.value < config.image_caption_unrelated_below
        and top.score >= config.flag_at
        and top.category not in config.informational
    ):
        out += f"; the caption does not match image {ic.least} (CLIP similarity {ic.value:.2f})"
    return out
