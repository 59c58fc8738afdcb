"""Evaluate the text model on the VALIDATION split (crossguard.models.data.split_of).

Per category: AUC, AUPRC (average precision), precision/recall/F1 at the thresholds, over the
validation rows annotated for that category. "any": max over the head categories' scores vs "any
annotated category is positive". Thresholds come from the model (chosen on train) unless given.
The encoder variant (fp32 or int8, crossguard.text.model.encoder_variant) is chosen by `precision`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.data import default_data_dir, load_davidson, load_openai, select
from crossguard.models.devcases import DevCase, load_devcases

MULTILINGUAL_FILE = "multilingual.jsonl"

ANY = "any"


@dataclass(frozen=True)
class CategoryMetrics:
    name: str
    n: int
    positives: int
    auc: float
    auprc: float
    threshold: float
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class RateRow:
    """One row of a contrastive table: how often benign cases were flagged and harmful ones
    caught. Flagged = some category at or above its threshold, or the text marked unread
    (unsupported language: the policy escalates it)."""

    table: str
    name: str
    benign: int
    benign_flagged: int
    harmful: int
    harmful_caught: int
    unread: int
    note: str = ""

    @property
    def correct(self) -> float:
        n = self.benign + self.harmful
        ok = self.benign - self.benign_flagged + self.harmful_caught
        return ok / n if n else math.nan


@dataclass
class EvalReport:
    split: str
    rows: int
    metrics: list[CategoryMetrics]
    model_infos: list[tuple[str, str]]
    seconds: float
    # Secondary, out-of-domain: Davidson tweets' hate head on their validation split.
    extra: list[CategoryMetrics] = field(default_factory=list)
    # Encoder variant scored: "fp32" or "int8".
    precision: str = ""
    # Per family / identity group / language, on the development cases and validation.
    rates: list[RateRow] = field(default_factory=list)

    def by_name(self) -> dict[str, CategoryMetrics]:
        return {m.name: m for m in [*self.metrics, *self.extra]}


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney AUC with tie correction; nan when a class is missing."""
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=np.float64)
    sp = p[order]
    i = 0
    while i < len(sp):
        j = i
        while j + 1 < len(sp) and sp[j + 1] == sp[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """AUPRC as average precision (step-wise, as scikit-learn), ties grouped."""
    pos = int(y.sum())
    if pos == 0:
        return math.nan
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, k = tp[last], k[last]
    precision = tp / k
    recall = tp / pos
    prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - prev) * precision))


def _metrics(name: str, y: np.ndarray, p: np.ndarray, threshold: float) -> CategoryMetrics:
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else math.nan
    recall = tp / (tp + fn) if tp + fn else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
    return CategoryMetrics(
        name,
        len(y),
        int(y.sum()),
        roc_auc(y, p),
        average_precision(y, p),
        threshold,
        precision,
        recall,
        f1,
    )


def eval_text(
    repository: ModelRepository | Path,
    thresholds: dict[Category, float] | None = None,
    *,
    data_dir: Path | None = None,
    settings: ModelSettings | None = None,
    include_davidson: bool = False,
    include_devcases: bool = True,
    progress: Callable[[str], None] | None = None,
    precision: str = "auto",
    english_encoder: str = "minilm",
) -> EvalReport:
    """Score the validation split of the OpenAI moderation samples with TextModel, through the
    text service's own preparation and chunking (so the figures describe what it serves).

    repository: a ModelRepository or its root path (built by build_default_repository).
    thresholds: per-category overrides; defaults to the model's (chosen on the train split).
      "any" fires when any head category is at or above its threshold.
    include_davidson: also report the hate head on Davidson's validation tweets (slower, ~20 s).
    include_devcases: also score the contrastive development cases (crossguard.models.devcases)
      and report per family, identity group and language; validation is always reported per
      language (crossguard.text.language).
    precision: encoder variant, "auto" (int8 on CPU, fp32 on CUDA), "fp32" or "int8".
    english_encoder: "minilm" or "mpnet" (crossguard.text.encoders.ENGLISH_ENCODERS).
    """
    from crossguard.text.model import TextModel

    repo = repository if isinstance(repository, ModelRepository) else ModelRepository(repository)
    settings = settings or ModelSettings(model_repository=repo.root)
    t0 = time.perf_counter()
    model = TextModel(repo, settings, precision=precision, english_encoder=english_encoder)
    model.load()
    try:
        cuts = {**model.thresholds, **(thresholds or {})}
        rows = select(load_openai(data_dir or default_data_dir()), "validation")
        if progress:
            progress(f"scoring {len(rows)} validation rows")
        classified = _classify_all(model, [r.text for r in rows])
        scores = [c for c, _ in classified]
        head_cats = [c for c in model.categories if c != Category.PROFANITY]
        metrics: list[CategoryMetrics] = []
        for cat in head_cats:
            idx = [i for i, r in enumerate(rows) if cat in r.labels]
            y = np.array([rows[i].labels[cat] for i in idx], dtype=np.int64)
            p = np.array([scores[i][cat] for i in idx], dtype=np.float64)
            metrics.append(_metrics(cat.value, y, p, cuts[cat]))
        y_any = np.array([int(r.any_positive) for r in rows], dtype=np.int64)
        p_any = np.array([max(s[c] for c in head_cats) for s in scores], dtype=np.float64)
        # "any" fires iff some category crosses its own threshold: margin max(p - t) >= 0.
        margin = np.array([max(s[c] - cuts[c] for c in head_cats) for s in scores])
        any_m = _metrics(ANY, y_any, p_any, math.nan)
        fired = _metrics(ANY, y_any, margin, 0.0)
        metrics.append(
            CategoryMetrics(
                ANY,
                any_m.n,
                any_m.positives,
                any_m.auc,
                any_m.auprc,
                math.nan,
                fired.precision,
                fired.recall,
                fired.f1,
            )
        )
        extra: list[CategoryMetrics] = []
        if include_davidson:
            tweets = select(load_davidson(data_dir or default_data_dir()), "validation")
            if progress:
                progress(f"scoring {len(tweets)} Davidson validation tweets (hate)")
            dscores = _predict(model, [t.text for t in tweets])
            y = np.array([t.labels[Category.HATE] for t in tweets], dtype=np.int64)
            p = np.array([s[Category.HATE] for s in dscores], dtype=np.float64)
            extra.append(_metrics("davidson:hate", y, p, cuts[Category.HATE]))

        def flagged(probs: dict[Category, float], unread: str) -> bool:
            return bool(unread) or any(probs[c] >= cuts[c] for c in head_cats)

        languages = [model.identify_language(r.text).language for r in rows]
        rates = _rates(
            "validation language",
            [
                (lang, r.any_positive, flagged(p, u), bool(u), "")
                for lang, r, (p, u) in zip(languages, rows, classified, strict=True)
            ],
        )
        if include_devcases:
            cases = load_devcases()
            if progress:
                progress(f"scoring {len(cases)} development cases")
            dev = _classify_all(model, [c.text for c in cases])
            outcome = [flagged(p, u) for p, u in dev]
            unread = [bool(u) for _, u in dev]
            held = {c.family for c in cases} - {c.family for c in cases if c.split == "train"}
            held_groups = {c.group for c in cases if c.group} - {
                c.group for c in cases if c.group and c.split == "train"
            }
            both = list(zip(cases, outcome, unread, strict=True))
            test = [(c, f, u) for c, f, u in both if c.split == "dev"]
            rates += _rates(
                "family (dev split)",
                [
                    (c.family, bool(c.label), f, u, "held out" if c.family in held else "")
                    for c, f, u in test
                ],
            )
            rates += _rates(
                "family (train split)",
                [(c.family, bool(c.label), f, u, "") for c, f, u in both if c.split == "train"],
            )
            rates += _rates(
                "identity group (benign, dev split)",
                [
                    (c.group, False, f, u, "held out" if c.group in held_groups else "")
                    for c, f, u in test
                    if c.family == "identity_benign"
                ],
            )
            rates += _rates(
                "language (dev cases)", [(c.lang, bool(c.label), f, u, "") for c, f, u in test]
            )
            english = [(c, f, u) for c, f, u in test if c.lang == "en"]
            rates += _rates(
                "all English dev cases",
                [("all", bool(c.label), f, u, "") for c, f, u in english],
            )
            rates += multilingual_rates(
                repo, settings, precision, progress, thresholds, english_encoder
            )
        return EvalReport(
            "validation",
            len(rows),
            metrics,
            model.model_infos,
            time.perf_counter() - t0,
            extra,
            model.encoder_precision,
            rates,
        )
    finally:
        model.close()


# --- multilingual path (crossguard.text.model.MultilingualScorer) ------------------------------


def multilingual_cases() -> list[DevCase]:
    """Every non-English development case: the contrastive file's and multilingual.jsonl's."""
    extra = resources.files("crossguard.models").joinpath("devcases", MULTILINGUAL_FILE)
    rows = [json.loads(line) for line in extra.read_text("utf-8").splitlines() if line.strip()]
    added = [
        DevCase(
            r["id"],
            r["family"],
            r["text"],
            int(r["label"]),
            Category(r["category"]),
            r["split"],
            r.get("group", ""),
            r["lang"],
        )
        for r in rows
    ]
    return [c for c in load_devcases() if c.lang != "en"] + added


def multilingual_half(case: DevCase) -> str:
    """ "choice" (looked at to decide the default) or "untouched", by sha256 of the case id."""
    return "choice" if hashlib.sha256(case.id.encode()).digest()[0] % 2 == 0 else "untouched"


def multilingual_rates(
    repo: ModelRepository,
    settings: ModelSettings,
    precision: str = "auto",
    progress: Callable[[str], None] | None = None,
    thresholds: dict[Category, float] | None = None,
    english_encoder: str = "minilm",
) -> list[RateRow]:
    """Per language on the non-English development cases, through the service with the
    multilingual path on (whatever CROSSGUARD_TEXT_MULTILINGUAL says): flagged = a category at
    its threshold (`thresholds`, e.g. the policy's, else the heads' own from the train split:
    the multilingual heads' for a text that path read, the English heads' for the others), or
    marked unread; one table per half (multilingual_half). Empty when the repository lacks the
    multilingual entries."""
    from crossguard.text.model import TextModel

    model = TextModel(
        repo, settings, precision=precision, multilingual=True, english_encoder=english_encoder
    )
    model.load()
    try:
        ml_cuts = model.multilingual_thresholds
        if not ml_cuts:
            return []
        cases = multilingual_cases()
        if progress:
            progress(f"scoring {len(cases)} non-English development cases (multilingual on)")
        classified = _classify_all(model, [c.text for c in cases])
        en_cuts = {**model.thresholds, **(thresholds or {})}
        ml_cuts = {**ml_cuts, **(thresholds or {})}
        readers = [model.identify_language(c.text).reader for c in cases]
    finally:
        model.close()
    rows: list[RateRow] = []
    for half in ("choice", "untouched"):
        picked = []
        for c, (probs, unread), reader in zip(cases, classified, readers, strict=True):
            if multilingual_half(c) != half:
                continue
            cuts = ml_cuts if reader == "multilingual" else en_cuts
            hit = any(
                probs.get(cat, 0.0) >= t for cat, t in cuts.items() if cat != Category.PROFANITY
            )
            picked.append((c.lang, bool(c.label), bool(unread) or hit, bool(unread), ""))
        rows += _rates(f"non-English dev cases, multilingual model on ({half} half)", picked)
    return rows


def _rates(table: str, cases: Sequence[tuple[str, bool, bool, bool, str]]) -> list[RateRow]:
    """(name, harmful, flagged, unread, note) per case -> one RateRow per name, sorted."""
    rows: dict[str, list[int]] = {}
    notes: dict[str, str] = {}
    for name, harmful, flagged, unread, note in cases:
        r = rows.setdefault(name, [0, 0, 0, 0, 0])
        if harmful:
            r[2] += 1
            r[3] += int(flagged)
        else:
            r[0] += 1
            r[1] += int(flagged)
        r[4] += int(unread)
        notes[name] = note
    return [
        RateRow(table, name, r[0], r[1], r[2], r[3], r[4], notes[name])
        for name, r in sorted(rows.items())
    ]


def _predict(
    model: object, texts: Sequence[str], in_flight: int = 256
) -> list[dict[Category, float]]:
    return [scores for scores, _ in _classify_all(model, texts, in_flight)]


def _classify_all(
    model: object, texts: Sequence[str], in_flight: int = 256
) -> list[tuple[dict[Category, float], str]]:
    """Scores as the text service computes them: the same domain code (crossguard.text.service:
    limits, control-character stripping, NFKC, sentence/window chunking with max over chunks)
    over `model`, evidence off, each with the reason it was not read ("" when it was: the
    service's language check, TextModel.identify_language). A text the service would refuse
    (empty once sanitised, over a limit) scores 0 in every category, as nothing would flag it."""
    from crossguard.core.errors import InvalidInput
    from crossguard.text.service import TextClassifier
    from crossguard.text.settings import TextServiceSettings

    async def run() -> list[tuple[dict[Category, float], str]]:
        # The environment's CROSSGUARD_TEXT_* settings apply, as in the service being evaluated.
        settings = TextServiceSettings(evidence_passes=0)
        classifier = TextClassifier(
            model,  # type: ignore[arg-type]
            settings,
            owns_model=False,
            language_of=getattr(model, "identify_language", None),
        )
        await classifier.start()
        gate = asyncio.Semaphore(max(1, min(in_flight, settings.queue_max)))

        async def one(k: int, text: str) -> tuple[dict[Category, float], str]:
            async with gate:
                try:
                    result = await classifier.classify(f"eval-{k}", [("text", text)])
                except InvalidInput:
                    return {}, ""
            unread = ",".join(u.reason for u in result.unread)
            return {s.category: s.score for s in result.scores}, unread

        try:
            return list(await asyncio.gather(*(one(k, t) for k, t in enumerate(texts))))
        finally:
            await classifier.close()

    scored = asyncio.run(run())
    categories = list(getattr(model, "categories", []))
    return [({c: s.get(c, 0.0) for c in categories}, unread) for s, unread in scored]


def format_eval_report(report: EvalReport) -> str:
    """The report as a fixed-width text table."""
    models = ", ".join(f"{n}/{v}" for n, v in report.model_infos)
    variant = f", {report.precision} encoder" if report.precision else ""
    lines = [
        f"text model evaluation{variant} on the {report.split} split ({report.rows} rows; "
        f"{models}; {report.seconds:.1f}s)",
        f"{'category':<18} {'n':>5} {'pos':>4} {'AUC':>6} {'AUPRC':>6} {'thresh':>7} "
        f"{'prec':>6} {'recall':>6} {'F1':>6}",
    ]

    def f(x: float, width: int = 6, digits: int = 3) -> str:
        return f"{'-':>{width}}" if math.isnan(x) else f"{x:>{width}.{digits}f}"

    for m in [*report.metrics, *report.extra]:
        thr = "per-cat" if m.name == ANY else f(m.threshold, 7)
        lines.append(
            f"{m.name:<18} {m.n:>5} {m.positives:>4} {f(m.auc)} {f(m.auprc)} {thr:>7} "
            f"{f(m.precision)} {f(m.recall)} {f(m.f1)}"
        )
    table = ""
    for r in report.rates:
        if r.table != table:
            table = r.table
            lines += [
                "",
                f"{table}: flagged = some category at its threshold, or marked unread "
                "(unsupported language)",
                f"{'name':<22} {'benign':>6} {'flagged':>7} {'harmful':>7} {'caught':>6} "
                f"{'unread':>6} {'correct':>7}",
            ]

        def pct(k: int, n: int) -> str:
            return f"{'-':>6}" if n == 0 else f"{100.0 * k / n:>5.0f}%"

        lines.append(
            f"{r.name:<22} {r.benign:>6} {pct(r.benign_flagged, r.benign):>7} {r.harmful:>7} "
            f"{pct(r.harmful_caught, r.harmful)} {r.unread:>6} {f(r.correct, 7, 2)}"
            + (f"  {r.note}" if r.note else "")
        )
    return "\n".join(lines)


def print_eval_report(report: EvalReport, out: Callable[[str], None] = print) -> None:
    """Print `format_eval_report(report)` through `out` (print, console.print, ...)."""
    out(format_eval_report(report))
