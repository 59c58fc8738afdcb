"""Fit the fusion rule's combination weights on the multimodal development set's fit part and
report fusion quality on its report part (`crossguard eval fusion`; the holdout part only with
`--holdout`). Recipe: docs/fusion.md.

Every text is scored as the services score it: the text service's domain code over the text
model (as vision and audio score OCR and ASR text, and as the consistency service has the text
service score the combination), semantic agreement with the consistency service's encoder, and
the fused result through the consistency service's own fuse() and the default policy's decide().
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from crossguard.consistency.config import (
    CombinationWeights,
    FusionConfig,
    dump_fusion_config,
    load_fusion_config,
)
from crossguard.consistency.framing import Framing, FramingHead
from crossguard.consistency.fusion import FusionInputs, FusionResult, fuse, logit, mean_agreement
from crossguard.consistency.parts import KIND_MODALITY, TextKind, TextView, combined_text
from crossguard.core.model_repository import ModelRepository
from crossguard.core.results import ClassifierResult, Modality, Score
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.evaluate import _predict, average_precision
from crossguard.models.fusion_data import DevItem, Part, build_dev_set

if TYPE_CHECKING:
    from crossguard.models.combination_head import CombinationHead, Embeddings
from crossguard.policy import Action, Policy, decide, default_policy
from crossguard.policy.inputs import ConsistencySignal, PolicyContext

Scores = dict[Category, float]
# Where `--derive real` caches derived texts (crossguard.models.fusion_derive).
DEFAULT_DERIVE_DIR = Path(".crossguard/cache")
RELIABILITY_GRID = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
PARTS: tuple[Part, ...] = ("fit", "report", "holdout")


@dataclass(frozen=True)
class ScoredItem:
    item: DevItem
    parts: dict[TextKind, Scores]
    combined: Scores | None
    agreement: dict[tuple[TextKind, TextKind], float]
    framing: Framing | None = None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def score_dev_set(
    items: Sequence[DevItem],
    repository: ModelRepository,
    settings: ModelSettings,
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[ScoredItem]:
    """Text-model scores of every text and every combination, and the pairwise semantic
    agreement of each item's texts. `cache` (JSON, keyed by text sha256 and model versions)
    saves re-scoring between runs."""
    from crossguard.consistency.embedding import SentenceEncoder, similarity
    from crossguard.text.model import TextModel

    model = TextModel(repository, settings)
    model.load()
    encoder = SentenceEncoder(repository, settings)
    versions = sorted({*model.model_infos, encoder.model})
    stored: dict[str, Any] = {}
    if cache is not None and cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("models") != [list(v) for v in versions]:
            stored = {}
    scores: dict[str, dict[str, float]] = stored.get("scores", {})
    embeds: dict[str, list[float]] = stored.get("embeddings", {})
    try:
        texts = {t for it in items for _, t in it.texts}
        texts |= {combined_text(_views(it)) for it in items if len(it.texts) >= 2}
        todo = sorted(t for t in texts if _sha(t) not in scores)
        if progress:
            progress(f"scoring {len(todo)} texts with the text model ({len(texts)} in all)")
        for text, got in zip(todo, _predict(model, todo), strict=True):
            scores[_sha(text)] = {c.value: float(v) for c, v in got.items()}
        multi = {t for it in items if len(it.texts) >= 2 for _, t in it.texts}
        todo = sorted(t for t in multi if _sha(t) not in embeds)
        if progress:
            progress(f"embedding {len(todo)} texts for semantic agreement")
        for start in range(0, len(todo), 32):
            chunk = todo[start : start + 32]
            for text, row in zip(chunk, encoder.embed(chunk), strict=True):
                embeds[_sha(text)] = [float(x) for x in row]
    finally:
        model.close()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(
            json.dumps(
                {"models": [list(v) for v in versions], "scores": scores, "embeddings": embeds}
            )
        )

    def cats(text: str) -> Scores:
        return {Category(k): v for k, v in scores[_sha(text)].items()}

    framing_head = _framing_head(repository, settings, encoder.model)

    out: list[ScoredItem] = []
    for it in items:
        parts = {kind: cats(text) for kind, text in it.texts}
        combined = cats(combined_text(_views(it))) if len(it.texts) >= 2 else None
        agreement: dict[tuple[TextKind, TextKind], float] = {}
        for i, (ka, ta) in enumerate(it.texts):
            for kb, tb in it.texts[i + 1 :]:
                agreement[(ka, kb)] = similarity(
                    np.asarray(embeds[_sha(ta)]), np.asarray(embeds[_sha(tb)])
                )
        framing = None
        if framing_head is not None and len(it.texts) >= 2:
            vectors = np.asarray([embeds[_sha(t)] for _, t in it.texts], dtype=np.float32)
            framing = framing_head.framing([k for k, _ in it.texts], vectors)
        out.append(ScoredItem(it, parts, combined, agreement, framing))
    return out


def _framing_head(
    repository: ModelRepository, settings: ModelSettings, encoder: tuple[str, str]
) -> FramingHead | None:
    """The repository's framing head, as the consistency service loads it by default; None
    where the repository has none (the harmful_framing signal is then not measured)."""
    from crossguard.consistency.settings import ConsistencySettings
    from crossguard.core.errors import ModelError

    try:
        entry = repository.get(ConsistencySettings.model_fields["framing_model"].default)
    except ModelError:
        return None
    return FramingHead(entry, settings, encoder)


def _views(it: DevItem) -> list[TextView]:
    return [TextView(kind, (kind.value,), text) for kind, text in it.texts]


def fusion_inputs(s: ScoredItem) -> FusionInputs:
    results = [
        ClassifierResult(KIND_MODALITY[k], [Score(c, v, 0) for c, v in sorted(sc.items())])
        for k, sc in s.parts.items()
    ]
    return FusionInputs(
        results=results,
        views=_views(s.item),
        combined=s.combined,
        agreement=s.agreement,
        framing=s.framing,
    )


@dataclass(frozen=True)
class _Item:
    tenant: str = ""
    surface: str = "comment"


def decision_of(policy: Policy, s: ScoredItem, fused: FusionResult | None) -> Action:
    """The default policy's action on the item: on the fusion's result (signals, uncertainty),
    or on pass-through max fusion when `fused` is None."""
    inputs = fusion_inputs(s)
    if fused is None:
        return decide(policy, _Item(), inputs.results, []).action
    context = PolicyContext(
        consistency=[
            ConsistencySignal(g.name, g.value, g.modalities, g.detail) for g in fused.signals
        ],
        uncertainty=fused.uncertainty,
    )
    return decide(policy, _Item(), inputs.results, [], fused=fused.fused, context=context).action


# --- fitting ------------------------------------------------------------------------------


def _part_scores(s: ScoredItem, cat: Category, config: FusionConfig | None = None) -> list[float]:
    """Each part's score for `cat` weighted by its modality's reliability (as fuse() does),
    highest first."""

    def weight(kind: TextKind) -> float:
        return 1.0 if config is None else config.reliability_of(KIND_MODALITY[kind])

    return sorted(
        (min(1.0, sc.get(cat, 0.0) * weight(k)) for k, sc in s.parts.items()), reverse=True
    )


def _features(
    s: ScoredItem, cat: Category, config: FusionConfig | None = None
) -> list[float] | None:
    if s.combined is None:
        return None
    ranked = _part_scores(s, cat, config)
    second = ranked[1] if len(ranked) > 1 else 0.0
    agree = mean_agreement(s.agreement)
    return [
        logit(ranked[0]),
        logit(second),
        logit(s.combined.get(cat, 0.0)),
        0.5 if agree is None else agree,
    ]


def fit_combination(
    scored: Sequence[ScoredItem],
    c: float = 1.0,
    below: float = 1.0,
    config: FusionConfig | None = None,
) -> CombinationWeights:
    """L2 logistic regression over (item, labeled category) rows of the multi-text items whose
    highest part score for the category is below `below` (the estimate only matters where it
    exceeds every part: 1.0 fits every row). Part scores are weighted by `config`'s
    reliabilities, as fuse() weights them."""
    from sklearn.linear_model import LogisticRegression

    x: list[list[float]] = []
    y: list[int] = []
    for s in scored:
        for cat, label in s.item.labels.items():
            f = _features(s, cat, config)
            if f is not None and _part_scores(s, cat, config)[0] < below:
                x.append(f)
                y.append(label)
    lr = LogisticRegression(C=c, max_iter=1000)
    lr.fit(np.asarray(x), np.asarray(y))
    w = lr.coef_[0]
    return CombinationWeights(
        intercept=round(float(lr.intercept_[0]), 4),
        max_part=round(float(w[0]), 4),
        second_part=round(float(w[1]), 4),
        combined=round(float(w[2]), 4),
        agreement=round(float(w[3]), 4),
    )


MAX_BENIGN_SIGNAL = 0.04


@dataclass(frozen=True)
class SignalRule:
    """When harmful_combination/* escalates: fusion's `combination_margin` (the estimate must
    exceed every part by this much) and the policy's `at_least` on the estimate, with the
    out-of-fold rates they give on the fit part."""

    margin: float
    cut: float
    recall: float  # of "benign parts, harmful combination" items
    benign: float  # of benign combinations


MARGINS = (0.0, 0.05, 0.1)
CUTS = tuple(round(float(c), 2) for c in np.arange(0.05, 0.95, 0.05))


def _oof_signal_values(
    scored: Sequence[ScoredItem], config: FusionConfig, policy: Policy, folds: int
) -> list[tuple[bool, float, float]]:
    """(is a combination item, estimate, estimate - top part) of the highest harmful category
    of every combination item and benign combination, with weights fitted on the other folds."""
    rows: list[tuple[bool, float, float]] = []
    for k in range(folds):
        train = [s for i, s in enumerate(scored) if i % folds != k]
        held = [s for i, s in enumerate(scored) if i % folds == k]
        weights = fit_combination(train, below=config.flag_at, config=config)
        fold_config = config.model_copy(
            update={"combination": {"default": weights}, "combination_margin": 0.0}
        )
        for is_combo, group in (
            (True, combination_items(held, policy)),
            (False, benign_combinations(held, policy)),
        ):
            for s in group:
                r = fuse(fusion_inputs(s), fold_config)
                best = (0.0, -1.0)
                for d in r.details:
                    if d.combination is None or d.category in config.informational:
                        continue
                    top = max(_part_scores(s, d.category, config)[0], 0.0)
                    if top < config.flag_at and d.combination > best[0]:
                        best = (d.combination, d.combination - top)
                rows.append((is_combo, best[0], best[1]))
    return rows


def signal_rule(
    scored: Sequence[ScoredItem], config: FusionConfig, policy: Policy, folds: int = 5
) -> SignalRule:
    """The (margin, cut) of MARGINS x CUTS that raises harmful_combination on the most
    combination items while at most MAX_BENIGN_SIGNAL of the benign combinations raise it
    (ties: the higher cut, then the higher margin). Values are out-of-fold (weights fitted on
    the other folds of `scored`), so the rule does not rest on the weights having seen the very
    items it is chosen on."""
    rows = _oof_signal_values(scored, config, policy, folds)
    combos = [(v, m) for c, v, m in rows if c]
    benign = [(v, m) for c, v, m in rows if not c]

    def rate(group: list[tuple[float, float]], margin: float, cut: float) -> float:
        hits = sum(v >= cut and m >= margin for v, m in group)
        return hits / len(group) if group else 0.0

    best = SignalRule(max(MARGINS), max(CUTS), 0.0, 0.0)
    for margin in MARGINS:
        for cut in CUTS:
            b = rate(benign, margin, cut)
            r = rate(combos, margin, cut)
            if b <= MAX_BENIGN_SIGNAL and (r, cut, margin) > (best.recall, best.cut, best.margin):
                best = SignalRule(margin, cut, r, b)
    return best


def framing_rule(
    scored: Sequence[ScoredItem], config: FusionConfig, policy: Policy
) -> tuple[float, float, float]:
    """(cut, combination items, benign combinations): the policy cut of CUTS on the
    harmful_framing signal that raises it on the most combination items of `scored` while at
    most MAX_BENIGN_SIGNAL of its benign combinations raise it (ties: the higher cut). The
    framing head never saw the development set, so no folds are needed."""

    def value(s: ScoredItem) -> float:
        signals = fuse(fusion_inputs(s), config).signals
        return max((g.value for g in signals if g.name.startswith(FRAMING)), default=0.0)

    combos = [value(s) for s in combination_items(scored, policy)]
    benign = [value(s) for s in benign_combinations(scored, policy)]

    def rate(group: list[float], cut: float) -> float:
        return sum(v >= cut for v in group) / len(group) if group else 0.0

    best = (max(CUTS), 0.0, 0.0)
    for cut in CUTS:
        r, b = rate(combos, cut), rate(benign, cut)
        if b <= MAX_BENIGN_SIGNAL and (r, cut) > (best[1], best[0]):
            best = (cut, r, b)
    return best


FRAMING = "harmful_framing/"
COMBINATION_GLOB = "harmful_combination/*"
# The grid of joint_rule: the combination and framing cuts and the uncertainty rule's
# min_score, chosen together because each alone can stay within the benign budget while
# together they exceed it.
JOINT_COMBINATION = (0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95)
JOINT_FRAMING = (0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
JOINT_MIN_SCORE = (0.3, 0.4, 0.5, 0.6, 0.7)


@dataclass(frozen=True)
class JointRule:
    combination: float
    framing: float
    min_score: float
    recall: float  # of "benign parts, harmful combination" items, escalated by the policy
    benign: float  # of benign combinations


def with_joint_rule(policy: Policy, combination: float, framing: float, min_score: float) -> Policy:
    """`policy` with its harmful_combination/* and harmful_framing/* cuts and its uncertainty
    min_score replaced (for measuring; the version is left alone)."""
    cuts = {COMBINATION_GLOB: combination, FRAMING + "*": framing}
    rules = [
        r.model_copy(update={"at_least": cuts[r.signal]}) if r.signal in cuts else r
        for r in policy.escalation.inconsistency
    ]
    uncertainty = policy.escalation.uncertainty.model_copy(update={"min_score": min_score})
    escalation = policy.escalation.model_copy(
        update={"inconsistency": rules, "uncertainty": uncertainty}
    )
    return policy.model_copy(update={"escalation": escalation})


def joint_rule(scored: Sequence[ScoredItem], config: FusionConfig, policy: Policy) -> JointRule:
    """The values of the JOINT_* grid under which the policy escalates the most combination
    items of `scored` while escalating at most MAX_BENIGN_SIGNAL of its benign combinations
    (whatever rule escalates them); ties: the fewer benign, then the first in grid order."""
    combos = combination_items(scored, policy)
    benign = benign_combinations(scored, policy)
    fused = [(s, fuse(fusion_inputs(s), config)) for s in [*combos, *benign]]

    def rate(p: Policy) -> tuple[float, float]:
        flags = [decision_of(p, s, f) != Action.ALLOW for s, f in fused]
        n = len(combos)
        return (
            sum(flags[:n]) / n if n else 0.0,
            sum(flags[n:]) / len(benign) if benign else 0.0,
        )

    best: tuple[tuple[float, ...], JointRule] | None = None
    for comb in JOINT_COMBINATION:
        for frame in JOINT_FRAMING:
            for mins in JOINT_MIN_SCORE:
                r, b = rate(with_joint_rule(policy, comb, frame, mins))
                key = (r, -b)
                if b <= MAX_BENIGN_SIGNAL and (best is None or key > best[0]):
                    best = (key, JointRule(comb, frame, mins, r, b))
    return best[1] if best is not None else JointRule(1.0, 1.0, 1.0, 0.0, 0.0)


def with_combination_cut(policy: Policy, cut: float) -> Policy:
    """`policy` with its harmful_combination/* rule's `at_least` set to `cut` (as if the YAML
    said so; the version is left alone: this is for measuring, not for serving)."""
    rules = [
        r.model_copy(update={"at_least": cut}) if r.signal == COMBINATION_GLOB else r
        for r in policy.escalation.inconsistency
    ]
    escalation = policy.escalation.model_copy(update={"inconsistency": rules})
    return policy.model_copy(update={"escalation": escalation})


def _cut(policy: Policy, signal: str) -> str:
    """The policy's `at_least` on `signal` (a rule's name or glob), as printed."""
    cuts = [r.at_least for r in policy.escalation.inconsistency if r.signal == signal]
    return str(cuts[0]) if cuts else f"none (no {signal} rule)"


def _joint_values(policy: Policy) -> str:
    return (
        f"{_cut(policy, COMBINATION_GLOB)}, {_cut(policy, FRAMING + '*')}, "
        f"{policy.escalation.uncertainty.min_score}"
    )


# --- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    value: float
    detail: str = ""


def _labeled_max(scores: Scores, item: DevItem) -> float:
    return max((scores.get(c, 0.0) for c in item.labels), default=0.0)


def _parts_allowed(s: ScoredItem, policy: Policy) -> bool:
    """Whether the policy allows every part of the item on its own."""
    alone = [
        decide(
            policy,
            _Item(),
            [ClassifierResult(KIND_MODALITY[k], [Score(c, v, 0) for c, v in sc.items()])],
            [],
        ).action
        for k, sc in s.parts.items()
    ]
    return all(a == Action.ALLOW for a in alone)


def _combined_flagged(s: ScoredItem, policy: Policy) -> bool:
    if s.combined is None:
        return False
    result = ClassifierResult(Modality.TEXT, [Score(c, v, 0) for c, v in s.combined.items()])
    return decide(policy, _Item(), [result], []).action != Action.ALLOW


def combination_items(scored: Sequence[ScoredItem], policy: Policy) -> list[ScoredItem]:
    """Harmful split/turn items whose every part alone the policy would allow (benign parts,
    harmful combination)."""
    return [
        s
        for s in scored
        if s.item.kind in ("split", "turn") and s.item.harmful and _parts_allowed(s, policy)
    ]


def benign_combinations(scored: Sequence[ScoredItem], policy: Policy) -> list[ScoredItem]:
    """Benign items of two or more parts, each allowed on its own: what fusion alone could
    wrongly escalate."""
    return [
        s
        for s in scored
        if not s.item.harmful and len(s.item.texts) >= 2 and _parts_allowed(s, policy)
    ]


def report(scored: Sequence[ScoredItem], config: FusionConfig, policy: Policy) -> list[Row]:
    fused = {s.item.id: fuse(fusion_inputs(s), config) for s in scored}
    y = np.asarray([int(s.item.harmful) for s in scored])
    rows = [Row("items", len(scored), f"{int(y.sum())} harmful")]

    def auprc(score: Callable[[ScoredItem], float]) -> float:
        return average_precision(y, np.asarray([score(s) for s in scored], dtype=np.float64))

    for kind in TextKind:

        def single(s: ScoredItem, kind: TextKind = kind) -> float:
            return _labeled_max(s.parts.get(kind, {}), s.item)

        rows.append(Row(f"AUPRC {KIND_MODALITY[kind].value} only ({kind.value})", auprc(single)))
    rows.append(
        Row(
            "AUPRC max fusion (pass-through)",
            auprc(lambda s: max((_labeled_max(p, s.item) for p in s.parts.values()), default=0.0)),
        )
    )
    rows.append(
        Row(
            "AUPRC context-aware fusion",
            auprc(
                lambda s: max(
                    (f.score for f in fused[s.item.id].fused if f.category in s.item.labels),
                    default=0.0,
                )
            ),
        )
    )
    combos = combination_items(scored, policy)
    benign_combos = benign_combinations(scored, policy)
    benign_multi = [s for s in scored if not s.item.harmful and len(s.item.texts) >= 2]
    # What the text model alone makes of the texts read together: the policy's action on the
    # combined text as if it were one caption (what any rule that trusts it fully would give).
    for name, group in (
        ("benign parts, harmful combination", combos),
        ("benign combinations (parts allowed alone)", benign_combos),
    ):
        read = sum(_combined_flagged(s, policy) for s in group)
        rows.append(
            Row(
                f"{name}: texts read together flagged as one text",
                read / len(group) if group else math.nan,
                f"{read}/{len(group)}",
            )
        )
    for label, use_fusion in (("max fusion", False), ("context-aware fusion", True)):

        def flagged(s: ScoredItem, use_fusion: bool = use_fusion) -> bool:
            fr = fused[s.item.id] if use_fusion else None
            return decision_of(policy, s, fr) != Action.ALLOW

        def rate(
            name: str, group: Sequence[ScoredItem], extra: str = "", label: str = label
        ) -> None:
            hit = sum(flagged(s) for s in group)
            value = hit / len(group) if group else math.nan
            rows.append(Row(f"{name} ({label})", value, f"{hit}/{len(group)}{extra}"))

        rate(
            "benign parts, harmful combination: flagged",
            combos,
            "".join(
                f"; {kind} {sum(flagged(s) for s in combos if s.item.kind == kind)}/"
                f"{sum(s.item.kind == kind for s in combos)}"
                for kind in ("split", "turn")
            ),
        )
        rate("benign combinations (parts allowed alone): flagged", benign_combos)
        rate("all benign multi-part items: flagged", benign_multi)
    return rows


def format_rows(title: str, rows: Sequence[Row]) -> str:
    lines = [title]
    for r in rows:
        value = f"{r.value:.3f}" if isinstance(r.value, float) else str(r.value)
        lines.append(f"  {r.name:<72} {value:>7}  {r.detail}")
    return "\n".join(lines)


Derivation = Literal["exact", "real"]


def fit_reliability(
    scored: Sequence[ScoredItem], config: FusionConfig, grid: Sequence[float] = RELIABILITY_GRID
) -> dict[Modality, float]:
    """Per derived-text modality (image: OCR, audio: ASR), the reliability from `grid` that
    gives the highest context-aware fusion AUPRC on `scored`, one modality at a time (the
    higher value on ties: 1.0 unless a lower one helps)."""
    chosen: dict[Modality, float] = {}
    for modality in (Modality.IMAGE, Modality.AUDIO):
        best = (-1.0, 0.0)
        for value in sorted(grid, reverse=True):
            trial = config.model_copy(update={"reliability": {**chosen, modality: value}})
            got = _fused_auprc(scored, trial)
            if got > best[0] + 1e-9:
                best = (got, value)
        chosen[modality] = best[1]
    return chosen


def _fused_auprc(scored: Sequence[ScoredItem], config: FusionConfig) -> float:
    y = np.asarray([int(s.item.harmful) for s in scored])
    p = [
        max(
            (f.score for f in fuse(fusion_inputs(s), config).fused if f.category in s.item.labels),
            default=0.0,
        )
        for s in scored
    ]
    return average_precision(y, np.asarray(p, dtype=np.float64))


@dataclass(frozen=True)
class FitResult:
    config: FusionConfig
    lines: list[str]


def fit_and_report(
    derivation: Derivation,
    scored: Sequence[ScoredItem],
    base: FusionConfig,
    policy: Policy,
    holdout: bool,
    provenance: dict[str, Any],
    tune_signal: bool = False,
    refit_weights: bool = True,
) -> FitResult:
    """Fit the rule on the fit part of `scored` (reliabilities with real derived texts, then
    the combination weights) and report it on the report part (and the holdout part)."""
    by_part: dict[Part, list[ScoredItem]] = {"fit": [], "report": [], "holdout": []}
    for s in scored:
        by_part[s.item.part].append(s)
    reliability: dict[Modality, float] = {}
    if derivation == "real":
        reliability = fit_reliability(by_part["fit"], base.model_copy(update={"reliability": {}}))
    start = base.model_copy(update={"reliability": reliability})
    # Fitted where the estimate matters: rows whose parts all score below the flag cut. On a
    # limited sample the packaged weights are kept, so that exact vs real compares the reading
    # noise alone (a refit on a few hundred items, most of them templates, would differ by the
    # sample more than by the noise).
    weights = (
        fit_combination(by_part["fit"], below=base.flag_at, config=start)
        if refit_weights
        else base.weights_for(["default"])
    )
    config = start.model_copy(
        update={
            # A refit is a new rule: decisions name it as context-fusion/<version>.
            "version": _next_version(base, weights, reliability),
            "combination": {"default": weights},
            "provenance": provenance,
        }
    )
    rule = signal_rule(by_part["fit"], config, policy)
    framing = framing_rule(by_part["fit"], config, policy)
    joint = joint_rule(by_part["fit"], config, policy)
    if tune_signal:
        config = config.model_copy(update={"combination_margin": rule.margin})
        policy = with_combination_cut(policy, rule.cut)
    fitted_reliability = {m.value: v for m, v in reliability.items()}
    lines = [
        f"== derivation: {derivation} ({DERIVATION_WORDS[derivation]})",
        f"fitted reliability (fit part): {fitted_reliability}",
        (
            "fitted combination weights (fit part): "
            if refit_weights
            else "combination weights (packaged, kept on a limited sample): "
        )
        + str(weights.model_dump()),
        "suggested harmful_combination rule (fit part, out-of-fold, at most "
        f"{MAX_BENIGN_SIGNAL:.0%} of benign combinations): combination_margin {rule.margin}, "
        f"policy at_least {rule.cut} (combinations {rule.recall:.1%}, benign "
        f"{rule.benign:.1%}); " + ("applied below" if tune_signal else "not applied below"),
        "suggested harmful_framing cut (fit part, at most "
        f"{MAX_BENIGN_SIGNAL:.0%} of benign combinations): policy at_least {framing[0]} "
        f"(combinations {framing[1]:.1%}, benign {framing[2]:.1%}); "
        f"the policy's: {_cut(policy, FRAMING + '*')}",
        "suggested together (fit part, at most "
        f"{MAX_BENIGN_SIGNAL:.0%} of benign combinations escalated by any rule): "
        f"harmful_combination at_least {joint.combination}, harmful_framing at_least "
        f"{joint.framing}, uncertainty min_score {joint.min_score} (combinations "
        f"{joint.recall:.1%}, benign {joint.benign:.1%}); the policy's: "
        f"{_joint_values(policy)}",
        format_rows("fit part (in-sample)", report(by_part["fit"], config, policy)),
        format_rows("report part", report(by_part["report"], config, policy)),
    ]
    if holdout:
        lines.append(format_rows("HOLDOUT part", report(by_part["holdout"], config, policy)))
    return FitResult(config, lines)


DERIVATION_WORDS: dict[str, str] = {
    "exact": "texts placed in the OCR / transcript slots exactly: no OCR/ASR noise",
    "real": "OCR slot rendered and read by pp-ocr, transcript slot spoken by flite and "
    "transcribed by Whisper (crossguard.models.fusion_derive)",
}


def eval_fusion(
    repository: ModelRepository | Path,
    *,
    data_dir: Path | None = None,
    cache: Path | None = None,
    write_config: Path | None = None,
    holdout: bool = False,
    progress: Callable[[str], None] | None = None,
    derive: Derivation = "exact",
    limit: int | None = None,
    derive_dir: Path = DEFAULT_DERIVE_DIR,
    combination_head: bool = False,
    tune_signal: bool = False,
) -> str:
    """Fit on the fit part, report on the report part (and the holdout part with `holdout`);
    write the fitted configuration to `write_config` when given. With `derive="real"` the
    first `limit` items (all by default; crossguard.models.fusion_derive.limited) are fitted
    and reported twice, with exact and with real derived texts, and the real fit is the one
    written. `combination_head`: also measure the candidate head of
    crossguard.models.combination_head. `tune_signal`: report with the harmful_combination
    margin and policy cut chosen on the fit part (signal_rule) instead of the configured ones.
    Returns the printed report."""
    repo = repository if isinstance(repository, ModelRepository) else ModelRepository(repository)
    settings = ModelSettings(model_repository=repo.root)
    t0 = time.perf_counter()
    items = build_dev_set(data_dir)
    runs: list[tuple[Derivation, list[DevItem]]] = []
    head = [
        f"multimodal development set: {len(items)} items ("
        + ", ".join(
            f"{p} {sum(it.part == p for it in items)}" for p in ("fit", "report", "holdout")
        )
        + ")"
    ]
    if derive == "real":
        from crossguard.models.fusion_derive import (
            derive_slot,
            limited,
            reading_noise,
            with_derived,
        )

        sample = limited(items, limit)
        derived = [
            derive_slot(sample, kind, repo, settings, derive_dir, progress)
            for kind in (TextKind.OCR, TextKind.TRANSCRIPT)
        ]
        real = with_derived(sample, derived)
        head.append(
            f"sample: {len(sample)} items"
            + (
                f" (--limit {limit}: item-id order, plus the template items)"
                if limit is not None
                else ""
            )
            + f"; {len(sample) - len(real)} dropped with real derivation (no text read at all)"
        )
        head += [
            f"derived {d.kind.value}: {len(d.texts)} texts with {d.method} "
            f"({d.fresh} new, {d.seconds:.0f} s); empty: "
            f"{sum(not v.strip() for v in d.texts.values())}; {reading_noise(d)}"
            for d in derived
        ]
        kept = {it.id for it in real}
        runs = [("exact", [it for it in sample if it.id in kept]), ("real", real)]
    else:
        runs = [("exact", items)]
    policy = default_policy()
    base = load_fusion_config()
    out = list(head)
    config: FusionConfig | None = None
    for derivation, run_items in runs:
        scored = score_dev_set(run_items, repo, settings, cache, progress)
        provenance = {
            "fitted_by": "crossguard eval fusion --write-config"
            + (" --derive real" if derivation == "real" else "")
            + " (docs/fusion.md)",
            "data": f"multimodal development set, {DERIVATION_WORDS[derivation]}; fit part "
            f"({sum(s.item.part == 'fit' for s in scored)} items) of "
            "crossguard.models.fusion_data",
            "text_models": sorted(_model_names(repo)),
        }
        fitted = fit_and_report(
            derivation, scored, base, policy, holdout, provenance, tune_signal, limit is None
        )
        out += fitted.lines
        if combination_head:
            out += _head_lines(scored, repo, settings, derive_dir, cache, policy, holdout, progress)
        config = fitted.config
    if write_config is not None and config is not None:
        header = (
            "# Fusion rule of the consistency service (docs/fusion.md). Written by\n"
            "# `crossguard eval fusion --write-config`: reliabilities and combination weights\n"
            "# fitted on the fit part of the multimodal development set; the other values are\n"
            "# chosen by hand.\n"
        )
        dump_fusion_config(config, write_config, header)
        out.append(f"wrote {write_config}")
    out.append(f"({time.perf_counter() - t0:.0f} s)")
    return "\n".join(out)


def _head_lines(
    scored: Sequence[ScoredItem],
    repo: ModelRepository,
    settings: ModelSettings,
    derive_dir: Path,
    cache: Path | None,
    policy: Policy,
    holdout: bool,
    progress: Callable[[str], None] | None,
) -> list[str]:
    from crossguard.models.combination_head import Embeddings, fit_head, training_pairs

    known = {}
    if cache is not None and cache.is_file():
        known = json.loads(cache.read_text()).get("embeddings", {})
    emb = Embeddings(repo, settings, derive_dir / "combination-embeddings.json", known)
    pairs = training_pairs()
    emb.ensure([t for p in pairs for t in (p.a, p.b)], progress)
    emb.ensure([t for s in scored if len(s.item.texts) >= 2 for _, t in s.item.texts], progress)
    head = fit_head(pairs, emb)
    parts: tuple[Part, ...] = PARTS if holdout else ("fit", "report")
    by_part = {p: [s for s in scored if s.item.part == p] for p in parts}
    rows = combination_rows(
        {str(p): v for p, v in by_part.items()}, head, emb, policy, MAX_BENIGN_SIGNAL
    )
    harmful = sum(p.label for p in pairs)
    return [
        *rows,
        f"  trained on {len(pairs)} training-split pairs ({harmful} harmful), C={head.c}",
    ]


def combination_rows(
    by_part: dict[str, list[ScoredItem]],
    head: CombinationHead,
    emb: Embeddings,
    policy: Policy,
    max_benign: float,
) -> list[str]:
    """The head's cut chosen on the fit part (the lowest, in 0.05 steps, at which at most
    `max_benign` of the benign combinations reach it), then per part: "benign parts, harmful
    combination" items and benign combinations at or above it."""

    def value(s: ScoredItem) -> float:
        return head.score([emb[t] for _, t in s.item.texts])

    fit_benign = np.asarray([value(s) for s in benign_combinations(by_part["fit"], policy)])
    cut = 0.95
    for c in np.arange(0.05, 0.95, 0.05):
        if len(fit_benign) == 0 or float(np.mean(fit_benign >= c)) <= max_benign:
            cut = round(float(c), 2)
            break
    lines = [f"combination head (measured, not served): cut {cut} chosen on the fit part"]
    for part, scored in by_part.items():
        combos = combination_items(scored, policy)
        benign = benign_combinations(scored, policy)
        hit = sum(value(s) >= cut for s in combos)
        fp = sum(value(s) >= cut for s in benign)
        kinds = "; ".join(
            f"{k} {sum(value(s) >= cut for s in combos if s.item.kind == k)}/"
            f"{sum(s.item.kind == k for s in combos)}"
            for k in ("split", "turn")
        )
        lines.append(
            f"  {part}: benign parts, harmful combination {hit}/{len(combos)} ({kinds}); "
            f"benign combinations {fp}/{len(benign)}"
            + (f" ({fp / len(benign):.1%})" if benign else "")
        )
    return lines


def _next_version(
    base: FusionConfig,
    weights: CombinationWeights,
    reliability: dict[Modality, float] | None = None,
) -> str:
    """The packaged default's version when the fit reproduces its weights and reliabilities,
    else the next one."""
    if base.combination.get("default") == weights and base.reliability == (reliability or {}):
        return base.version
    return str(int(base.version) + 1) if base.version.isdigit() else f"{base.version}.1"


def _model_names(repo: ModelRepository) -> list[str]:
    names = []
    for name in ("minilm-l6-encoder", "text-heads", "profanity"):
        versions = repo.versions(name)
        if versions:
            names.append(f"{name}/{versions[-1]}")
    return names
