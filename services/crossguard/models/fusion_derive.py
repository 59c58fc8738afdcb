"""Real derived texts for the multimodal development set (`crossguard eval fusion --derive real`):
each text in the OCR slot is rendered into an image (crossguard.models.eval_vision.render_text)
and read back by the vision service's OCR model (pp-ocr); each text in the TRANSCRIPT slot is
spoken by flite (crossguard.models.audio_eval's default voice) and transcribed by the audio
service's model (decode -> VAD -> Whisper). The derived text is what the consistency service
would see: OCR lines top to bottom joined by newlines, transcript segments joined by spaces
(crossguard.consistency.parts).

Both are slow on CPU (OCR about 1.5 images/s, ASR about 0.2 x real time on 2 busy cores), so
every derived text is cached in `<cache_dir>/derived.jsonl`, one JSON line per text, keyed by
sha256 of (method, model version, text): an interrupted run keeps what it derived, and a new OCR
or Whisper version derives afresh.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from crossguard.consistency.parts import TextKind
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.models.fusion_data import DevItem

# Rendered texts longer than this are cut into several images of at most this many characters
# (eval_vision's MAX_RENDER_CHARS: a taller image is scaled below readable by OCR's 960 px
# detection limit); their OCR texts are joined in order, as the lines of several images are.
RENDER_CHARS = 400
CACHE_FILE = "derived.jsonl"


class Deriver(Protocol):
    kind: TextKind
    method: str  # what produced the text, with the model version: part of the cache key

    def derive(self, text: str) -> str: ...

    def close(self) -> None: ...


def cache_key(text: str, method: str) -> str:
    return hashlib.sha256(f"{method}\0{text}".encode()).hexdigest()


class DerivedCache:
    """Derived texts by cache_key, in an append-only JSON Lines file."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / CACHE_FILE
        self.entries: dict[str, str] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    row = json.loads(line)
                    self.entries[row["key"]] = row["derived"]

    def get(self, text: str, method: str) -> str | None:
        return self.entries.get(cache_key(text, method))

    def put(self, text: str, method: str, derived: str) -> None:
        key = cache_key(text, method)
        self.entries[key] = derived
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "method": method, "derived": derived}) + "\n")


def render_chunks(text: str, size: int = RENDER_CHARS) -> list[str]:
    """`text` (whitespace collapsed) cut at word boundaries into pieces of at most `size`
    characters (a longer word is a piece of its own)."""
    pieces: list[str] = []
    current = ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > size:
            pieces.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _seed(text: str) -> int:
    """A per-text seed, so that a text is rendered the same way in every run."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


class OcrDeriver:
    kind = TextKind.OCR

    def __init__(self, repository: ModelRepository, settings: ModelSettings) -> None:
        from crossguard.vision.ocr import OcrModel

        self.model = OcrModel(repository, settings)
        self.model.load()
        self.method = f"render:eval_vision/{RENDER_CHARS}+pp-ocr/{self.model.version}"

    def derive(self, text: str) -> str:
        import numpy as np
        from PIL import Image

        from crossguard.models.eval_vision import _png, render_text

        rng = np.random.default_rng(_seed(text))
        lines: list[str] = []
        for piece in render_chunks(text):
            # Through PNG bytes and back, as an uploaded image reaches the vision service.
            png = _png(render_text(piece, rng))
            rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            read = sorted(self.model.read(rgb), key=lambda line: (line.y, line.x))
            lines += [line.text.strip() for line in read if line.text.strip()]
        return "\n".join(lines)

    def close(self) -> None:
        self.model.close()


class AsrDeriver:
    kind = TextKind.TRANSCRIPT

    def __init__(self, repository: ModelRepository, settings: ModelSettings) -> None:
        from crossguard.audio.model import AudioModel
        from crossguard.audio.settings import AudioServiceSettings
        from crossguard.models.audio_eval import speaker, voice_label
        from crossguard.text.model import TextModel

        audio_settings = AudioServiceSettings()
        self.text_model = TextModel(repository, settings)
        self.text_model.load()
        self.model = AudioModel(self.text_model, audio_settings, settings, repository)
        self.model.load()
        self.speak = speaker("flite")
        whisper = dict(self.model.model_infos).get(audio_settings.whisper_model, "?")
        self.method = f"{voice_label('flite')}+{audio_settings.whisper_model}/{whisper}"

    def derive(self, text: str) -> str:
        analysis = self.model.analyze("speech", self.speak(" ".join(text.split())))
        return " ".join(s.text.strip() for s in analysis.segments if s.text.strip())

    def close(self) -> None:
        self.model.close()
        self.text_model.close()


DERIVERS: dict[TextKind, Callable[[ModelRepository, ModelSettings], Deriver]] = {
    TextKind.OCR: OcrDeriver,
    TextKind.TRANSCRIPT: AsrDeriver,
}


# Hand-written template items (fusion_data's turn / turn_control): always in a limited sample,
# since they are most of the "benign parts, harmful combination" items and cost only 20
# distinct images to read.
TEMPLATE_KINDS = ("turn", "turn_control")


def limited(items: Sequence[DevItem], limit: int | None) -> list[DevItem]:
    """The first `limit` items in item-id (sha256) order, i.e. a fixed random sample across
    kinds and parts, plus every template item; all items when `limit` is None."""
    ordered = sorted(items, key=lambda it: it.id)
    if limit is None:
        return ordered
    return [it for k, it in enumerate(ordered) if k < limit or it.kind in TEMPLATE_KINDS]


def texts_of(items: Iterable[DevItem], kind: TextKind) -> list[str]:
    """The distinct texts in slot `kind`, in first-seen order."""
    return list(dict.fromkeys(t for it in items for k, t in it.texts if k == kind))


@dataclass(frozen=True)
class Derived:
    kind: TextKind
    method: str
    texts: dict[str, str]  # source text -> derived text
    seconds: float  # spent deriving in this run (cache hits cost nothing)
    fresh: int  # derived in this run


def derive_slot(
    items: Sequence[DevItem],
    kind: TextKind,
    repository: ModelRepository,
    settings: ModelSettings,
    cache_dir: Path,
    progress: Callable[[str], None] | None = None,
    make: Callable[[ModelRepository, ModelSettings], Deriver] | None = None,
) -> Derived:
    """Every `kind` text of `items` through the real model, from the cache where it has them."""
    cache = DerivedCache(cache_dir)
    todo = texts_of(items, kind)
    deriver = (make or DERIVERS[kind])(repository, settings)
    out: dict[str, str] = {}
    fresh = 0
    t0 = time.perf_counter()
    try:
        missing = [t for t in todo if cache.get(t, deriver.method) is None]
        if progress:
            progress(
                f"{kind.value}: {len(todo)} texts, {len(missing)} to derive ({deriver.method})"
            )
        for text in todo:
            got = cache.get(text, deriver.method)
            if got is None:
                got = deriver.derive(text)
                cache.put(text, deriver.method, got)
                fresh += 1
                if progress and fresh % 25 == 0:
                    rate = fresh / (time.perf_counter() - t0)
                    left = (len(missing) - fresh) / rate if rate else 0.0
                    progress(
                        f"{kind.value}: {fresh}/{len(missing)} derived "
                        f"({rate:.2f}/s, about {left / 60:.0f} min left)"
                    )
            out[text] = got
        method = deriver.method
    finally:
        deriver.close()
    return Derived(kind, method, out, time.perf_counter() - t0, fresh)


def with_derived(items: Sequence[DevItem], derived: Sequence[Derived]) -> list[DevItem]:
    """`items` with their OCR / TRANSCRIPT slots holding the derived texts. A slot the model
    read nothing from is left out (the consistency service sees no such text); an item left
    with no text at all is dropped (counted by the caller)."""
    by_kind = {d.kind: d.texts for d in derived}
    out: list[DevItem] = []
    for it in items:
        texts = tuple(
            (k, by_kind[k][t] if k in by_kind else t)
            for k, t in it.texts
            if k not in by_kind or by_kind[k][t].strip()
        )
        if texts:
            out.append(replace(it, texts=texts))
    return out


def reading_noise(derived: Derived) -> str:
    """How far the derived texts are from the placed ones: OCR as mean character similarity
    (difflib, case and spacing ignored, as `crossguard eval vision` measures it), ASR as WER
    after Whisper's English normaliser (jiwer, as `crossguard eval audio` measures it)."""
    pairs = list(derived.texts.items())
    if not pairs:
        return "no texts"
    if derived.kind == TextKind.TRANSCRIPT:
        import jiwer

        from crossguard.models.audio_eval import normalise

        refs = [(normalise(t), normalise(d)) for t, d in pairs]
        refs = [(r, h) for r, h in refs if r]
        wer = float(jiwer.wer([r for r, _ in refs], [h for _, h in refs]))
        return f"WER {wer:.1%}"
    import difflib

    def flat(text: str) -> str:
        return " ".join(text.split()).lower()

    ratios = [difflib.SequenceMatcher(None, flat(t), flat(d)).ratio() for t, d in pairs]
    same = sum(r == 1.0 for r in ratios)
    return f"character similarity {sum(ratios) / len(ratios):.1%} (mean), {same} read exactly"
