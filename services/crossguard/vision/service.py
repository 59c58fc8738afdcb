"""The vision safety classifier (domain logic, no gRPC): decode each image safely in the decode
pool, then per sampled frame open_nsfw (micro-batched), perceptual hashes against the banks, and
OCR whose text the text models score; per category the worst frame counts and is named.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from crossguard.core.classifier_metrics import ClassifierMetrics
from crossguard.core.errors import InvalidInput, LimitExceeded, NotReady
from crossguard.core.model_contract import Model
from crossguard.core.results import (
    ClassifierResult,
    DerivedTextEvidence,
    Evidence,
    HashMatchEvidence,
    ImageRegion,
    ImageRegionEvidence,
    Modality,
    PartEmbedding,
    Score,
    StageTime,
    TextSpanEvidence,
)
from crossguard.core.serving.classifier import BatchedClassifier
from crossguard.core.taxonomy import Category, severity
from crossguard.vision.decode import DecodedImage, Frame
from crossguard.vision.decode_pool import DecodePool
from crossguard.vision.evidence import HashMatch, ImageFindings, ModelSignal, OcrFrameText
from crossguard.vision.hashbank import HashBankStore
from crossguard.vision.hashindex import BankIndex
from crossguard.vision.hashing import FrameHashes, HashKind, hash_frame
from crossguard.vision.ocr import NAME as OCR_MODEL
from crossguard.vision.ocr import OcrLine
from crossguard.vision.ocr_text import TextScorer, frame_text
from crossguard.vision.settings import DecodeLimits, VisionServiceSettings

log = logging.getLogger(__name__)

# The signal of OCR text scored by the text service.
OCR_TEXT_MODEL = "ocr+text"

# A 1×1 white PNG.
_WARM_UP_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8ffff3f0005fe02fea7d6a4e80000000049454e44ae426082"
)


class OcrLike(Protocol):
    """What the classifier needs of crossguard.vision.ocr.OcrModel."""

    name: str
    version: str

    def load(self) -> None: ...

    def ready(self) -> bool: ...

    def read(self, rgb: np.ndarray) -> list[OcrLine]: ...

    def close(self) -> None: ...


class FrameScorer(Protocol):
    """An optional model scoring frames per category: crossguard.vision.clip.ClipModel,
    crossguard.vision.nsfwjs.NsfwjsModel."""

    name: str
    version: str

    def load(self) -> None: ...

    def ready(self) -> bool: ...

    def predict(self, batch: Sequence[np.ndarray]) -> list[dict[Category, float]]: ...

    def close(self) -> None: ...


class ClipLike(FrameScorer, Protocol):
    """What the classifier needs of crossguard.vision.clip.ClipModel: frame scores and the
    frames' image embeddings from one pass."""

    def embed_and_predict(
        self, batch: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[dict[Category, float]]]: ...


@dataclass(frozen=True)
class ImagePart:
    part_id: str
    data: bytes
    mime_type: str


@dataclass(frozen=True)
class VisionResult:
    images: list[ImageFindings]
    models: list[tuple[str, str]]
    timings: list[StageTime]

    def scores(self) -> dict[Category, float]:
        out: dict[Category, float] = {}
        for image in self.images:
            for cat, value in image.scores().items():
                out[cat] = max(out.get(cat, 0.0), value)
        return out

    def to_classifier_result(self, max_evidence: int = 0) -> ClassifierResult:
        """The template's result: per-category maxima, and evidence for reviewers (hash matches,
        then OCR lines the text service flagged, the open_nsfw score with its frame, the other
        OCR lines with their boxes), at most `max_evidence` pieces (0: all)."""
        ordered = sorted(self.scores().items(), key=lambda kv: (-kv[1], kv[0].value))
        evidence = [e for image in self.images for e in _evidence(image)]
        evidence.sort(key=_evidence_rank)
        if max_evidence > 0:
            evidence = evidence[:max_evidence]
        return ClassifierResult(
            modality=Modality.IMAGE,
            scores=[Score(cat, value, severity(value)) for cat, value in ordered],
            evidence=evidence,
            models=list(self.models),
            timings=list(self.timings),
            embeddings=[i.embedding for i in self.images if i.embedding is not None],
        )


def _evidence(image: ImageFindings) -> list[Evidence]:
    out: list[Evidence] = []
    whole = ImageRegion(0, 0, image.width, image.height)
    match = image.hash_match
    if match is not None:
        out.append(
            HashMatchEvidence(
                image.part_id,
                match.category,
                1.0,
                match.bank,
                match.distance,
                match.entry_id,
                match.kind,
                match.frame_index,
            )
        )
    text_signal = next((s for s in image.signals if s.model == OCR_TEXT_MODEL), None)
    for signal in image.signals:
        if signal.model == OCR_TEXT_MODEL:
            continue
        for cat, value in signal.scores.items():
            out.append(
                ImageRegionEvidence(
                    image.part_id, cat, value, whole, signal.model, signal.frame_index
                )
            )
    top: tuple[Category, float] | None = None
    if text_signal is not None and text_signal.scores:
        top = max(text_signal.scores.items(), key=lambda kv: kv[1])
    for frame in image.ocr:
        flagged = {i: cat for cat, lines in frame.flagged for i in lines}
        for i, line in enumerate(frame.lines):
            cat = flagged.get(i) or (top[0] if top else Category.SEXUAL)
            weight = text_signal.scores.get(cat, 0.0) if text_signal and i in flagged else 0.0
            out.append(
                DerivedTextEvidence(
                    image.part_id,
                    cat,
                    weight,
                    line.text,
                    ImageRegion(line.x, line.y, line.width, line.height),
                    OCR_MODEL,
                    frame.frame_index,
                )
            )
    return out


def _evidence_rank(e: Evidence) -> tuple[int, float]:
    if isinstance(e, HashMatchEvidence):
        return (0, 0.0)
    if isinstance(e, DerivedTextEvidence) and e.weight > 0:
        return (1, -e.weight)
    if isinstance(e, ImageRegionEvidence):
        return (2, -e.weight)
    return (3, 0.0)


class VisionClassifier(BatchedClassifier[list[ImagePart], np.ndarray, float]):
    """Classify the image parts of a content item, on the serving template: `model` is
    open_nsfw (served through the template's micro-batcher); OCR, the text service and the hash
    banks are optional (`None` switches that signal off). Models are injected so that tests and
    several classifiers can share loaded ones (`owns_model=False` leaves them loaded on
    close)."""

    def __init__(
        self,
        model: Model[np.ndarray, float],
        settings: VisionServiceSettings | None = None,
        *,
        ocr: OcrLike | None = None,
        text: TextScorer | None = None,
        store: HashBankStore | None = None,
        clip: ClipLike | None = None,
        nsfwjs: FrameScorer | None = None,
        limits: DecodeLimits | None = None,
        owns_model: bool = True,
        metrics: ClassifierMetrics | None = None,
    ) -> None:
        self.settings = settings or VisionServiceSettings()
        super().__init__(
            model, self.settings, Modality.IMAGE, owns_model=owns_model, metrics=metrics
        )
        self.limits = limits or DecodeLimits()
        self.ocr = ocr if self.settings.ocr else None
        self.text = text if self.ocr is not None else None
        self.store = store if self.settings.hash_banks else None
        self.clip = clip
        self.nsfwjs = nsfwjs
        # Optional models that score frames per category (second opinions, zero-shot).
        self.frame_scorers = [m for m in (nsfwjs, clip) if m is not None]
        self.pool = DecodePool(
            self.limits,
            workers=self.settings.decode_workers,
            timeout_seconds=self.settings.decode_timeout_seconds,
        )
        # OCR and hashing are CPU-bound and long compared with a request: a small pool of their
        # own keeps them from filling asyncio's default executor.
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vision-cpu")
        self._index: BankIndex | None = None
        self._reload_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """The template's start (open_nsfw loaded, batcher), then OCR, the decode workers, the
        hash index and a warm-up pass."""
        t0 = time.perf_counter()
        extras: list[OcrLike | FrameScorer] = [
            *([self.ocr] if self.ocr else []),
            *self.frame_scorers,
        ]
        for extra in extras:
            if not extra.ready():
                await asyncio.to_thread(extra.load)
        await super().start()
        for extra in extras:
            self.model_infos.append((extra.name, extra.version))
        self.pool.start()
        await self._warm_up()
        if self.store is not None:
            self._index = await asyncio.to_thread(self._build_index)
            if self.settings.hash_reload_seconds > 0:
                self._reload_task = asyncio.create_task(self._reload_loop())
        log.info(
            "vision classifier ready",
            extra={"models": self.model_infos, "seconds": round(time.perf_counter() - t0, 3)},
        )

    async def _warm_up(self) -> None:
        """Start the decode workers and run every model once, so that the first request does
        not pay for process spawning and onnxruntime's first-run allocations."""
        await self.pool.decode(_WARM_UP_PNG, "image/png")
        blank = np.full((64, 64, 3), 255, dtype=np.uint8)
        await self.predict([blank])
        if self.ocr is not None:
            await asyncio.get_running_loop().run_in_executor(self._cpu, self.ocr.read, blank)

    async def close(self) -> None:
        if self._reload_task is not None:
            self._reload_task.cancel()
            await asyncio.gather(self._reload_task, return_exceptions=True)
            self._reload_task = None
        await super().close()
        await asyncio.to_thread(self.pool.close)
        self._cpu.shutdown(wait=True, cancel_futures=True)
        if self._owns_model:
            if self.ocr is not None:
                await asyncio.to_thread(self.ocr.close)
            if self.text is not None:
                await self.text.close()
            for scorer in self.frame_scorers:
                await asyncio.to_thread(scorer.close)
            if self.store is not None:
                await asyncio.to_thread(self.store.close)

    @property
    def index(self) -> BankIndex | None:
        return self._index

    def _build_index(self) -> BankIndex:
        assert self.store is not None
        s = self.settings
        return BankIndex.from_store(
            self.store, {HashKind.PDQ: s.pdq_threshold, HashKind.PHASH: s.phash_threshold}
        )

    async def reload_banks(self) -> bool:
        """Rebuild the index when the store's revision moved; True when it did."""
        if self.store is None:
            return False
        revision = await asyncio.to_thread(self.store.revision)
        if self._index is not None and revision == self._index.revision:
            return False
        self._index = await asyncio.to_thread(self._build_index)
        log.info("hash banks reloaded", extra={"revision": revision, "hashes": len(self._index)})
        return True

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.hash_reload_seconds)
            try:
                await self.reload_banks()
            except Exception:  # the old index keeps serving; the next round tries again
                log.exception("hash bank reload failed")

    # --- classification ----------------------------------------------------------------------

    async def _classify(
        self, content_id: str, request: list[ImagePart], max_evidence: int
    ) -> ClassifierResult:
        result = await self.analyse(content_id, request)
        return result.to_classifier_result(max_evidence or self.settings.default_evidence)

    async def analyse(self, content_id: str, parts: Sequence[ImagePart]) -> VisionResult:
        """Everything found in `parts` of item `content_id` (what `classify` reports, in full).
        Raises the decoder's domain errors (InvalidInput subclasses with a `reason`),
        LimitExceeded, NotReady before start() or when the text service cannot score OCR
        text."""
        if not self.ready():
            raise NotReady("vision models are not loaded yet")
        if not parts:
            raise InvalidInput(f"request for content {content_id!r} has no image parts")
        if len(parts) > self.settings.max_parts:
            raise LimitExceeded(
                f"request has {len(parts)} image parts; the limit is {self.settings.max_parts} "
                "(CROSSGUARD_VISION_MAX_PARTS)"
            )
        ids = [p.part_id for p in parts]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"duplicate part ids in {ids}; part ids must be unique")
        t0 = time.perf_counter()
        decoded = await asyncio.gather(*(self.pool.decode(p.data, p.mime_type) for p in parts))
        t_decode = time.perf_counter()
        found = await asyncio.gather(
            *(self._image(content_id, p.part_id, d) for p, d in zip(parts, decoded, strict=True))
        )
        t_end = time.perf_counter()
        models = list(self.model_infos)
        for _, text_models in found:
            models.extend(m for m in text_models if m not in models)
        return VisionResult(
            images=[image for image, _ in found],
            models=models,
            timings=[
                StageTime("decode", (t_decode - t0) * 1000.0),
                StageTime("models", (t_end - t_decode) * 1000.0),
                StageTime("total", (t_end - t0) * 1000.0),
            ],
        )

    async def _image(
        self, content_id: str, part_id: str, image: DecodedImage
    ) -> tuple[ImageFindings, list[tuple[str, str]]]:
        """The image's findings and the (name, version) of the text models that scored its
        OCR text."""
        frames = image.frames
        loop = asyncio.get_running_loop()
        nsfw_task = self.predict([f.pixels for f in frames])
        hash_task = (
            loop.run_in_executor(self._cpu, _hash_frames, frames)
            if self._index is not None and len(self._index)
            else None
        )
        ocr_task = self._ocr(content_id, part_id, frames) if self.ocr is not None else None
        pixels = [f.pixels for f in frames]
        scorer_tasks = [
            (m, loop.run_in_executor(self._cpu, m.predict, pixels))
            for m in self.frame_scorers
            if m is not self.clip
        ]
        clip_task = (
            loop.run_in_executor(self._cpu, self.clip.embed_and_predict, pixels)
            if self.clip is not None
            else None
        )
        nsfw_scores = await nsfw_task
        worst = int(np.argmax(nsfw_scores))
        signals = [
            ModelSignal(
                self.model.name,
                self.model.version,
                {Category.SEXUAL: float(nsfw_scores[worst])},
                frames[worst].index,
            )
        ]
        for scorer, task in scorer_tasks:
            per_frame = await task
            top = [max(scores.values(), default=0.0) for scores in per_frame]
            k = int(np.argmax(top))
            signals.append(ModelSignal(scorer.name, scorer.version, per_frame[k], frames[k].index))
        embedding: PartEmbedding | None = None
        if clip_task is not None and self.clip is not None:
            embeds, per_frame = await clip_task
            top = [max(scores.values(), default=0.0) for scores in per_frame]
            k = int(np.argmax(top))
            signals.append(
                ModelSignal(self.clip.name, self.clip.version, per_frame[k], frames[k].index)
            )
            embedding = image_embedding(part_id, (self.clip.name, self.clip.version), embeds)
        notes: list[str] = []
        ocr_texts: list[OcrFrameText] = []
        text_models: list[tuple[str, str]] = []
        if ocr_task is not None:
            ocr_texts, text_signal, text_models = await ocr_task
            if text_signal is not None:
                signals.append(text_signal)
        match = None
        if hash_task is not None:
            hashes = await hash_task
            match = await loop.run_in_executor(self._cpu, self._match, frames, hashes, notes)
        findings = ImageFindings(
            part_id=part_id,
            format=image.format,
            width=image.width,
            height=image.height,
            n_frames=image.n_frames,
            frames_scored=[f.index for f in frames],
            signals=signals,
            ocr=ocr_texts,
            hash_match=match,
            notes=notes,
            embedding=embedding,
        )
        return findings, text_models

    async def _ocr(
        self, content_id: str, part_id: str, frames: list[Frame]
    ) -> tuple[list[OcrFrameText], ModelSignal | None, list[tuple[str, str]]]:
        """OCR on up to ocr_max_frames frames; the text of each frame that has any is scored by
        the text service (one call per frame, concurrently), and the worst frame counts."""
        assert self.ocr is not None
        loop = asyncio.get_running_loop()
        chosen = _spread(frames, self.settings.ocr_max_frames)
        read = await asyncio.gather(
            *(loop.run_in_executor(self._cpu, self.ocr.read, f.pixels) for f in chosen)
        )
        texts = [frame_text(lines, self.settings.ocr_max_chars) for lines in read]
        min_chars = self.settings.ocr_min_chars
        scored = [
            (f, lines, t)
            for f, lines, t in zip(chosen, read, texts, strict=True)
            if t.scorable(min_chars)
        ]
        if self.text is None or not scored:
            return (
                [OcrFrameText(f.index, lines) for f, lines in zip(chosen, read, strict=True)],
                None,
                [],
            )
        results = await asyncio.gather(
            *(
                self.text.classify_texts(content_id, [(f"{part_id}#frame{f.index}", t.text)])
                for f, _, t in scored
            )
        )
        ocr_texts: list[OcrFrameText] = []
        flagged_by_frame: dict[int, list[tuple[Category, list[int]]]] = {}
        best: dict[Category, float] = {}
        worst_frame, top = scored[0][0].index, -1.0
        models: list[tuple[str, str]] = []
        for (frame, _lines, text), result in zip(scored, results, strict=True):
            for s in result.scores:
                best[s.category] = max(best.get(s.category, 0.0), s.score)
                if s.score > top:
                    top, worst_frame = s.score, frame.index
            for e in result.evidence:
                if isinstance(e, TextSpanEvidence):
                    flagged_by_frame.setdefault(frame.index, []).append(
                        (e.category, text.lines_in(e.start, e.end))
                    )
            models.extend(m for m in result.models if m not in models)
        for f, lines in zip(chosen, read, strict=True):
            ocr_texts.append(OcrFrameText(f.index, lines, flagged_by_frame.get(f.index, [])))
        name = OCR_TEXT_MODEL
        version = "+".join(
            [f"{self.ocr.name}:{self.ocr.version}", *(f"{n}:{v}" for n, v in models)]
        )
        return ocr_texts, ModelSignal(name, version, best, worst_frame), models

    def _match(
        self, frames: list[Frame], hashes: list[FrameHashes], notes: list[str]
    ) -> HashMatch | None:
        index, store = self._index, self.store
        if index is None or store is None:
            return None
        best: tuple[int, HashKind, Any, Frame] | None = None
        for frame, fh in zip(frames, hashes, strict=True):
            candidates: list[tuple[HashKind, list[str]]] = [(HashKind.PHASH, fh.phash)]
            if fh.pdq_quality >= self.settings.pdq_min_quality:
                candidates.insert(0, (HashKind.PDQ, fh.pdq))
            else:
                notes.append(
                    f"frame {frame.index}: PDQ quality {fh.pdq_quality} < "
                    f"{self.settings.pdq_min_quality}, not matched on PDQ"
                )
            for kind, variants in candidates:
                hit = index.nearest(kind, variants)
                if hit is not None and (best is None or hit.distance < best[0]):
                    best = (hit.distance, kind, hit, frame)
        if best is None:
            return None
        distance, kind, hit, frame = best
        entry = store.entry(hit.row_id)
        bank = store.bank(hit.bank)
        if entry is None or bank is None:  # removed since the index was built
            return None
        return HashMatch(
            bank=bank.name,
            category=bank.category,
            kind=kind.value,
            distance=distance,
            threshold=index.thresholds[kind],
            entry_id=entry.entry_id,
            entry_hash=entry.hash,
            frame_index=frame.index,
            note=entry.note,
        )


def image_embedding(
    part_id: str, model: tuple[str, str], frame_embeds: np.ndarray
) -> PartEmbedding:
    """One embedding per image: the mean of its scored frames' (one frame for a still image),
    L2-normalised again."""
    mean = frame_embeds.mean(axis=0)
    norm = float(np.linalg.norm(mean)) or 1.0
    return PartEmbedding(part_id, model, tuple(float(v) for v in mean / norm))


def _hash_frames(frames: list[Frame]) -> list[FrameHashes]:
    return [hash_frame(f.pixels) for f in frames]


def _spread(frames: list[Frame], count: int) -> list[Frame]:
    if len(frames) <= count:
        return list(frames)
    step = (len(frames) - 1) / max(1, count - 1)
    return [frames[round(i * step)] for i in range(count)] if count > 1 else [frames[0]]
