"""The text safety classifier (domain logic, no gRPC): validation against explicit limits,
sanitising, chunking of long texts, micro-batched model calls, max-pooling of scores over chunks
and parts, and occlusion evidence with a bounded number of extra forward passes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded, Overloaded
from crossguard.core.model_contract import Model
from crossguard.core.results import (
    ClassifierResult,
    Evidence,
    Modality,
    Score,
    StageTime,
    TextSpanEvidence,
    UnreadPart,
)
from crossguard.core.serving.classifier import BatchedClassifier, BatchItem, Outcome
from crossguard.core.taxonomy import Category, severity
from crossguard.text.language import UNSUPPORTED_LANGUAGE, LanguageVerdict
from crossguard.text.settings import TextServiceSettings
from crossguard.text.textprep import Chunk, SanitizedText, plan_chunks, sanitize, units

log = logging.getLogger(__name__)

Probabilities = dict[Category, float]

# Sanitising more than this many code points runs in a worker thread, off the event loop.
_INLINE_SANITIZE_CHARS = 4096


TextParts = Sequence[tuple[str, str]]  # (part_id, text) pairs: the text parser's output


@dataclass
class _Part:
    part_id: str
    clean: SanitizedText
    spans: list[tuple[int, int]]
    chunks: list[Chunk]
    unread: UnreadPart | None = None
    # Which text model path read its pieces (LanguageVerdict.reader), for the result's `models`.
    readers: set[str] = field(default_factory=set)


@dataclass
class _Window:
    """One occluded variant of a chunk: units [first, last) removed."""

    part: _Part
    first: int
    last: int
    text: str


@dataclass
class _EvidenceTarget:
    part: _Part
    chunk: Chunk
    base: Probabilities
    categories: list[Category] = field(default_factory=list)


def prepare_text(
    text: str, settings: TextServiceSettings
) -> tuple[SanitizedText, list[tuple[int, int]], list[Chunk]]:
    """What the service scores of one text part: the sanitised text, its word units and the
    pieces (whole, or sentence/window chunks) under `settings`' limits."""
    clean = sanitize(text)
    spans = units(clean.text)
    chunks = plan_chunks(
        clean.text,
        spans,
        whole_units=settings.whole_text_units,
        window_units=settings.window_units,
        overlap_units=settings.window_overlap_units,
        min_units=settings.min_piece_units,
        max_chars=settings.chunk_max_chars,
    )
    return clean, spans, chunks


class TextClassifier(BatchedClassifier[TextParts, str, Probabilities]):
    """Classify the text parts of a content item.

    `classify` validates, sanitises (NFKC, control and format characters removed), splits long
    texts into overlapping chunks, scores every chunk through a micro-batcher around
    `model.predict`, and takes each category's maximum over chunks and parts. For categories at
    or above their threshold it finds evidence spans by occlusion: it removes word windows from
    the chunk that drove the score and measures the drop, spending at most
    `settings.evidence_passes` extra forward passes per request. Lifecycle, batching, metrics
    and timing: crossguard.core.serving.classifier.BatchedClassifier.
    """

    def __init__(
        self,
        model: Model[str, Probabilities],
        settings: TextServiceSettings | None = None,
        *,
        owns_model: bool = True,
        metrics: ClassifierMetrics | None = None,
        language_of: Callable[[str], LanguageVerdict] | None = None,
    ) -> None:
        """`language_of`: identifies a piece's language (TextModel.identify_language); a
        part with a piece the model does not read is reported in the result's `unread`, and the
        path that read the others (LanguageVerdict.reader) chooses the result's `models` (None:
        no check)."""
        self.language_of = language_of
        # Models that route by language (TextModel.models_for) name the entries that scored
        # each item; others report every entry they hold.
        self.models_for: Callable[[set[str]], list[tuple[str, str]]] | None = getattr(
            model, "models_for", None
        )
        self.settings = settings or TextServiceSettings()
        super().__init__(
            model,
            self.settings,
            Modality.TEXT,
            owns_model=owns_model,
            metrics=metrics,
            default_threshold=self.settings.default_threshold,
        )

    async def _classify(
        self, content_id: str, parts: Sequence[tuple[str, str]], max_evidence: int
    ) -> ClassifierResult:
        """Score `parts` ((part_id, text) pairs) of item `content_id`; raises InvalidInput /
        LimitExceeded for bad requests."""
        (outcome,) = await self._classify_many([BatchItem(content_id, parts, max_evidence)])
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _classify_many(self, items: Sequence[BatchItem[TextParts]]) -> list[Outcome]:
        """Score many requests with one pass over their chunks: each validated and prepared
        (a bad one gets its own error), every chunk of every request submitted to the batcher
        at once, then evidence for the requests that need it (_evidence_categories)."""
        t_start = time.perf_counter()
        prepared: list[list[_Part] | Exception] = []
        valid: list[int] = []
        chars = 0
        for k, item in enumerate(items):
            try:
                chars += self._validate(item.content_id, item.request)
            except (InvalidInput, LimitExceeded) as exc:
                prepared.append(exc)
                continue
            prepared.append([])
            valid.append(k)

        def prepare_valid() -> list[list[_Part] | Exception]:
            return [self._try_prepare(items[k].request) for k in valid]

        # Much text in all (one long request or many): sanitised off the event loop.
        done = (
            await asyncio.to_thread(prepare_valid)
            if chars > _INLINE_SANITIZE_CHARS
            else prepare_valid()
        )
        for k, got in zip(valid, done, strict=True):
            prepared[k] = got
        t_prep = time.perf_counter()

        # One forward pass per chunk, all through the batcher (coalesced with other requests).
        texts = [
            p.clean.text[c.start : c.end]
            for parts in prepared
            if not isinstance(parts, Exception)
            for p in parts
            for c in p.chunks
        ]
        try:
            outputs = await self.predict(texts) if texts else []
        except Exception as exc:  # the model call failed or the queue is full: every item
            return [parts if isinstance(parts, Exception) else exc for parts in prepared]
        t_model = time.perf_counter()

        errors: dict[int, Exception] = {}
        scored: dict[int, dict[Category, float]] = {}
        pending: list[tuple[int, Awaitable[list[Evidence]]]] = []
        k = 0
        for index, (item, parts) in enumerate(zip(items, prepared, strict=True)):
            if isinstance(parts, Exception):
                errors[index] = parts
                continue
            scores: dict[Category, float] = dict.fromkeys(self.categories, 0.0)
            # Where each category's maximum came from: (part, chunk, its probabilities).
            argmax: dict[Category, tuple[_Part, Chunk, Probabilities]] = {}
            for part in parts:
                for ch in part.chunks:
                    probs = outputs[k]
                    k += 1
                    for cat, value in probs.items():
                        if cat not in argmax or value > scores.get(cat, 0.0):
                            scores[cat] = float(value)
                            argmax[cat] = (part, ch, probs)
            scored[index] = scores
            flagged = self._evidence_categories(scores, item.max_evidence > 0)
            wanted = self._evidence_count(item.max_evidence)
            if flagged and wanted and self.settings.evidence_passes:
                pending.append(
                    (
                        index,
                        self._evidence_or_none(item.content_id, scores, argmax, flagged, wanted),
                    )
                )

        evidence: dict[int, list[Evidence]] = {}
        if pending:  # concurrently: their occluded variants share model calls
            found = await asyncio.gather(*(work for _, work in pending))
            evidence = {index: ev for (index, _), ev in zip(pending, found, strict=True)}
        t_end = time.perf_counter()

        prep_ms = (t_prep - t_start) * 1000.0
        model_ms = (t_model - t_prep) * 1000.0
        outcomes: list[Outcome] = []
        for index in range(len(items)):
            if index in errors:
                outcomes.append(errors[index])
                continue
            scores = scored[index]
            ordered = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0].value))
            spent = (t_end - t_model) * 1000.0 if index in evidence else 0.0
            parts = prepared[index]
            unread = [] if isinstance(parts, Exception) else [p.unread for p in parts if p.unread]
            readers = (
                set() if isinstance(parts, Exception) else {r for p in parts for r in p.readers}
            )
            models = (
                self.models_for(readers)
                if self.models_for is not None and self.language_of is not None
                else list(self.model_infos)
            )
            result = ClassifierResult(
                modality=Modality.TEXT,
                scores=[Score(cat, value, severity(value)) for cat, value in ordered],
                evidence=evidence.get(index, []),
                models=models,
                unread=unread,
                timings=[
                    StageTime("prepare", prep_ms),
                    StageTime("model", model_ms),
                    StageTime("evidence", spent),
                    StageTime("total", prep_ms + model_ms + spent),
                ],
            )
            outcomes.append(result)
        return outcomes

    async def _evidence_or_none(
        self,
        content_id: str,
        scores: dict[Category, float],
        argmax: dict[Category, tuple[_Part, Chunk, Probabilities]],
        flagged: list[Category],
        wanted: int,
    ) -> list[Evidence]:
        try:
            return await self._evidence(scores, argmax, flagged, wanted)
        except Overloaded:
            # Evidence is best effort: under back-pressure the scores still go out.
            log.warning("evidence skipped: model queue full", extra={"content_id": content_id})
            return []

    def _evidence_categories(self, scores: dict[Category, float], asked: bool) -> list[Category]:
        """The categories to find evidence for, most severe first: those at or above their
        threshold or the evidence threshold (CROSSGUARD_TEXT_EVIDENCE_THRESHOLD, whichever is
        lower); none for an item below both (most items: evidence costs up to
        evidence_passes extra model passes) unless the caller `asked`, who then gets the
        highest-scoring category's."""
        floor = self.settings.evidence_threshold
        flagged = sorted(
            (c for c, v in scores.items() if v >= min(self.threshold(c), floor)),
            key=lambda c: (-scores[c], c.value),
        )
        if not flagged and asked and scores:
            flagged = [min(scores, key=lambda c: (-scores[c], c.value))]
        return flagged

    # --- internals ---------------------------------------------------------------------------

    def _validate(self, content_id: str, parts: Sequence[tuple[str, str]]) -> int:
        """Check every limit; returns the total number of characters."""
        s = self.settings
        if not parts:
            raise InvalidInput(
                f"request for content {content_id!r} has no text parts; send at least one"
            )
        if len(parts) > s.max_parts:
            raise LimitExceeded(
                f"request has {len(parts)} text parts; the limit is {s.max_parts} "
                "(CROSSGUARD_TEXT_MAX_PARTS)"
            )
        seen: set[str] = set()
        total_chars = 0
        for part_id, text in parts:
            if part_id in seen:
                raise InvalidInput(f"duplicate part_id {part_id!r}; part ids must be unique")
            seen.add(part_id)
            n = len(text)
            if n > s.max_part_chars:
                raise LimitExceeded(
                    f"text part {part_id!r} has {n} characters; the limit is "
                    f"{s.max_part_chars} characters per part (CROSSGUARD_TEXT_MAX_PART_CHARS)"
                )
            total_chars += n
        if total_chars > s.max_total_chars:
            raise LimitExceeded(
                f"request has {total_chars} characters of text; the limit is "
                f"{s.max_total_chars} per request (CROSSGUARD_TEXT_MAX_TOTAL_CHARS)"
            )
        # UTF-8 takes at most 4 bytes per code point: encode (a copy) only when that bound
        # could break the byte limit.
        if 4 * total_chars <= s.max_request_bytes:
            return total_chars
        total_bytes = sum(
            len(t) if t.isascii() else len(t.encode("utf-8", "surrogatepass")) for _, t in parts
        )
        if total_bytes > s.max_request_bytes:
            raise LimitExceeded(
                f"request has {total_bytes} bytes of UTF-8 text; the limit is "
                f"{s.max_request_bytes} bytes per request (CROSSGUARD_TEXT_MAX_REQUEST_BYTES)"
            )
        return total_chars

    def _prepare(self, parts: Sequence[tuple[str, str]]) -> list[_Part]:
        prepared = [_Part(part_id, *prepare_text(text, self.settings)) for part_id, text in parts]
        if self.language_of is not None:
            for part in prepared:
                part.unread = self._unread(part, self.language_of)
        return prepared

    @staticmethod
    def _unread(part: _Part, language_of: Callable[[str], LanguageVerdict]) -> UnreadPart | None:
        """The part's first piece in a language the model does not read, if any; records
        which model path read each piece in `part.readers`."""
        unread: UnreadPart | None = None
        for ch in part.chunks:
            verdict = language_of(part.clean.text[ch.start : ch.end])
            part.readers.add(verdict.reader)  # "" (unsupported): the default path scored it
            if not verdict.supported and unread is None:
                detail = f"{verdict.language} {verdict.confidence:.2f}"
                unread = UnreadPart(part.part_id, UNSUPPORTED_LANGUAGE, detail)
        return unread

    def _prepare_checked(self, parts: Sequence[tuple[str, str]]) -> list[_Part]:
        prepared = self._prepare(parts)
        if not any(p.chunks for p in prepared):
            raise InvalidInput(
                f"no text to classify: all {len(parts)} text part(s) are empty or contain only "
                "whitespace and control characters"
            )
        return prepared

    def _try_prepare(self, parts: Sequence[tuple[str, str]]) -> list[_Part] | Exception:
        try:
            return self._prepare_checked(parts)
        except InvalidInput as exc:
            return exc

    @staticmethod
    def _solo_text(window: _Window) -> str:
        part = window.part
        return part.clean.text[part.spans[window.first][0] : part.spans[window.last - 1][1]]

    def _evidence_count(self, requested: int) -> int:
        n = requested if requested > 0 else self.settings.default_evidence
        return min(n, self.settings.max_evidence)

    async def _evidence(
        self,
        scores: dict[Category, float],
        argmax: dict[Category, tuple[_Part, Chunk, Probabilities]],
        flagged: list[Category],
        wanted: int,
    ) -> list[Evidence]:
        flagged = [c for c in flagged if c in argmax]
        if not flagged:
            return []
        budget = self.settings.evidence_passes
        # The chunks that drove the flagged categories, most severe first; at least 4 passes
        # each so that every chunk examined gets a meaningful split.
        targets: dict[tuple[int, int], _EvidenceTarget] = {}
        for cat in flagged:
            part, ch, probs = argmax[cat]
            key = (id(part), ch.first)
            if key not in targets:
                if len(targets) >= max(1, budget // 4):
                    continue
                targets[key] = _EvidenceTarget(part, ch, probs)
            targets[key].categories.append(cat)

        per_target = budget // len(targets)
        # Stage 1, necessity: remove each window and measure the drop. When a chunk has more
        # units than passes, a third of its passes is kept back for stage 2.
        plans: list[tuple[_EvidenceTarget, list[_Window]]] = []
        for target in targets.values():
            n_units = target.chunk.last - target.chunk.first
            passes = per_target if n_units <= per_target else max(1, per_target * 2 // 3)
            plans.append((target, _occlusions(target.part, target.chunk, passes)))
        flat = [(t, w) for t, ws in plans for w in ws]
        outputs = await self.batcher.submit_many([w.text for _, w in flat])
        used = len(flat)

        min_drop = self.settings.evidence_min_drop
        by_category: dict[Category, list[TextSpanEvidence]] = {c: [] for c in flagged}
        for (target, window), probs in zip(flat, outputs, strict=True):
            for cat in target.categories:
                drop = target.base.get(cat, 0.0) - probs.get(cat, 0.0)
                if drop >= min_drop:
                    by_category[cat].append(_span_evidence(window, cat, drop))

        # Stage 2, sufficiency, only for categories that no single removal explains (the cue is
        # repeated: "kill you, kill you"): score windows on their own with the passes left.
        left = budget - used
        pending = [(t, ws, [c for c in t.categories if not by_category[c]]) for t, ws in plans]
        pending = [(t, ws, cats) for t, ws, cats in pending if cats]
        if left > 0 and pending:
            share = max(1, left // len(pending))
            solo = [(t, w, cats) for t, ws, cats in pending for w in ws[:share]][:left]
            texts = [self._solo_text(w) for _, w, _ in solo]
            outputs = await self.batcher.submit_many(texts)
            for (target, window, cats), probs in zip(solo, outputs, strict=True):
                for cat in cats:
                    alone = min(probs.get(cat, 0.0), target.base.get(cat, 0.0))
                    if alone >= min(self.threshold(cat), self.settings.evidence_threshold):
                        by_category[cat].append(_span_evidence(window, cat, alone))

        # Round-robin over categories (most severe first), strongest spans first in each.
        for items in by_category.values():
            items.sort(key=lambda e: (-e.weight, e.start))
        evidence: list[Evidence] = []
        rank = 0
        while len(evidence) < wanted:
            added = False
            for cat in flagged:
                items = by_category[cat]
                if rank < len(items):
                    evidence.append(items[rank])
                    added = True
                    if len(evidence) == wanted:
                        break
            if not added:
                break
            rank += 1
        return evidence


def _span_evidence(window: _Window, category: Category, weight: float) -> TextSpanEvidence:
    part = window.part
    start = part.spans[window.first][0]
    end = part.spans[window.last - 1][1]
    o_start, o_end = part.clean.original_span(start, end)
    return TextSpanEvidence(
        part_id=part.part_id,
        category=category,
        weight=float(weight),
        start=o_start,
        end=o_end,
        text=part.clean.original[o_start:o_end],
    )


def _occlusions(part: _Part, ch: Chunk, passes: int) -> list[_Window]:
    """At most `passes` variants of chunk `ch`, each with one window of consecutive units
    removed; windows tile the chunk."""
    n_units = ch.last - ch.first
    if passes <= 0 or n_units <= 0:
        return []
    size = max(1, math.ceil(n_units / passes))
    text = part.clean.text
    out: list[_Window] = []
    for first in range(ch.first, ch.last, size):
        last = min(ch.last, first + size)
        before = text[ch.start : part.spans[first][0]]
        after = text[part.spans[last - 1][1] : ch.end]
        variant = (before.rstrip() + " " + after.lstrip()).strip()
        out.append(_Window(part, first, last, variant))
    return out
