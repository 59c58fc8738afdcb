"""Text in images: PP-OCRv4 detection + recognition (+ the angle classifier) as ONNX, run by
rapidocr-onnxruntime's pipeline (its pre/post-processing: DB box extraction, perspective crops,
CTC decoding with the character list stored in the recognition model) on the model files of the
repository entry `pp-ocr`, which `crossguard models build` copies from that package.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossguard.core.errors import ModelError, NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.onnx_session import CUDA, choose_providers
from crossguard.core.settings import ModelSettings

NAME = "pp-ocr"
# Repository file of each rapidocr stage.
FILES = {"det": "det.onnx", "rec": "rec.onnx", "cls": "cls.onnx"}
# Detection input size: the longer side scaled to at most 960 (PaddleOCR's own det default)
# instead of rapidocr's "shorter side at least 736", which upscales wide memes and screenshots
# (800×300 -> 1963×736). Measured on 2 busy cores, an 800×300 image with a 20 px and a 14 px
# line: 1.72 s and "I willfindyouandkillyou" with rapidocr's default, 0.50 s and both lines
# read exactly with this.
DET_OPTIONS: dict[str, object] = {"det_limit_type": "max", "det_limit_side_len": 960}


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from a frame, with its axis-aligned box in the frame's pixels."""

    text: str
    confidence: float
    x: int
    y: int
    width: int
    height: int


# PP-OCR's recogniser (trained mostly on Chinese) often drops the spaces of tightly set Latin
# capitals, the usual meme font ("IWILLFINDYOU"), and the text models cannot read that. When a
# line of 6+ letters came back without a space, spaces are put back where the gap between two
# characters' boxes (rapidocr's per-character boxes from the CTC alignment) is wider than this
# fraction of the median character width. Measured on the demo meme (28 px DejaVu Sans Bold):
# gaps inside words 0-8 px, between words 11-13 px, median width 16-19 px.
RESPACE_GAP = 0.5


def respace(text: str, boxes: Sequence[Sequence[Sequence[float]]]) -> str:
    """`text` with spaces restored from its characters' boxes (see RESPACE_GAP); unchanged
    when it has spaces, is short, or the boxes do not match its characters."""
    if " " in text or len(text) < 6 or len(boxes) != len(text):
        return text
    spans = [(min(p[0] for p in b), max(p[0] for p in b)) for b in boxes]
    widths = sorted(right - left for left, right in spans)
    median = widths[len(widths) // 2]
    if median <= 0:
        return text
    out = [text[0]]
    for i in range(1, len(text)):
        if spans[i][0] - spans[i - 1][1] > RESPACE_GAP * median:
            out.append(" ")
        out.append(text[i])
    return "".join(out)


def _bounding_box(points: Sequence[Sequence[float]]) -> tuple[int, int, int, int]:
    xs = [float(p[0]) for p in points]
    ys = [float(p[1]) for p in points]
    x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
    return x0, y0, max(0, round(max(xs)) - x0), max(0, round(max(ys)) - y0)


class OcrModel:
    """Model contract (crossguard.core.model_contract.Model[np.ndarray, list[OcrLine]]):
    RGB frames -> the text lines in each, top to bottom."""

    name = NAME

    def __init__(
        self,
        repository: ModelRepository | None = None,
        settings: ModelSettings | None = None,
        *,
        min_confidence: float = 0.5,
    ) -> None:
        self.settings = settings or ModelSettings()
        self.repository = repository or ModelRepository(self.settings.model_repository)
        self.min_confidence = min_confidence
        self.version = "unloaded"
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._engine is not None:
                return
            try:
                import onnxruntime
                from rapidocr_onnxruntime import RapidOCR
            except ImportError as exc:
                raise ModelError(
                    f"OCR needs the Python package rapidocr-onnxruntime: {exc}"
                ) from exc
            entry = self.repository.get(NAME)
            entry.verify()
            providers = choose_providers(
                self.settings.onnx_providers, onnxruntime.get_available_providers()
            )
            cuda = CUDA in providers
            threads = self.settings.onnx_intra_op_threads or -1
            self._engine = RapidOCR(
                det_model_path=str(entry.file(FILES["det"])),
                rec_model_path=str(entry.file(FILES["rec"])),
                cls_model_path=str(entry.file(FILES["cls"])),
                det_use_cuda=cuda,
                rec_use_cuda=cuda,
                cls_use_cuda=cuda,
                intra_op_num_threads=threads,
                text_score=self.min_confidence,
                **DET_OPTIONS,
            )
            self.version = entry.manifest.version

    def ready(self) -> bool:
        return self._engine is not None

    def predict(self, batch: Sequence[np.ndarray]) -> list[list[OcrLine]]:
        return [self.read(rgb) for rgb in batch]

    def read(self, rgb: np.ndarray) -> list[OcrLine]:
        engine = self._engine
        if engine is None:
            raise NotReady("OCR is not loaded; call load() first")
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        result, _elapsed = engine(bgr, return_word_box=True)
        lines: list[OcrLine] = []
        for row in result or ():
            points, text, confidence = row[0], str(row[1]), float(row[2])
            if not text.strip():
                continue
            if len(row) > 3 and row[3]:
                text = respace(text, row[3])
            x, y, w, h = _bounding_box(points)
            lines.append(OcrLine(text, confidence, x, y, w, h))
        return lines

    def close(self) -> None:
        with self._lock:
            self._engine = None
            self.version = "unloaded"
