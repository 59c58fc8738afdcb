"""Text in images: PP-OCRv4 detection + recognition as ONNX, run by rapidocr-onnxruntime's
pipeline (its pre/post-processing: DB box extraction, perspective crops,
CTC decoding with the character list stored in the recognition model) on the model files of the
repository entry `pp-ocr`, which `crossguard models build` copies from that package.
"""

from __future__ import annotations

import itertools
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
# Line orientation. rapidocr's angle classifier squeezes each line into 192×48 px; a long line
# (a 700×20 px screenshot line, aspect 35) becomes a smear, and the classifier turned such
# lines upside down in 14 of the eval's 121 upright "choose" images (read as garbage, "K pue
# Aibue jab pinom" for "...would get angry and", or as nothing). So lines are read upright
# first, and a line read with less confidence than this is read again turned 180°; the reading
# with the higher confidence is kept (most upright lines read at 0.95 or more; the wrongly
# turned lines seen read at 0.00-0.75).
REREAD_BELOW = 0.9


# Word gaps. PP-OCRv4's recogniser (trained mostly on Chinese) reads the gap between two Latin
# words as CTC blank frames far more often than as its space class, so whole lines come back
# without spaces ("Theblackdemographichasa..."). In those blank frames the space class still
# gets a small probability (0.01-0.3) at word gaps and almost none (< 0.01) inside a word, so
# the most space-like frame of a blank run between two characters becomes a space when its space
# probability reaches this. Measured on 14 eval "choose" images (6 fonts, 18-33 px): words read
# exactly 77% as decoded by rapidocr, 97% at 0.003 and 0.01, 95% at 0.03, 89% at 0.1.
SPACE_PROBABILITY = 0.01


# Lines recognised with less confidence are dropped. Rendered text reads at 0.92 or more in 99%
# of lines (267 lines of 40 labelled texts: none below 0.73); mirrored or noise "text" in
# photos reads at 0.5-0.65 and scored as harmful text it flagged benign photos
# (`crossguard eval vision`, docs/vision.md).
MIN_CONFIDENCE = 0.7


def restore_spaces(
    preds: np.ndarray, space: int, threshold: float = SPACE_PROBABILITY
) -> np.ndarray:
    """CTC outputs [batch, frames, classes] (class 0 blank) with one frame of each blank run
    between two characters turned into `space` where that frame's space probability is at least
    `threshold` (see SPACE_PROBABILITY). Greedy CTC decoding of the result has the spaces."""
    out = preds.copy()
    best = preds.argmax(axis=2)
    for b in range(preds.shape[0]):
        chars = np.flatnonzero(best[b] != 0)
        for left, right in itertools.pairwise(chars):
            if right - left < 2 or space in (best[b, left], best[b, right]):
                continue
            gap = preds[b, left + 1 : right, space]
            k = left + 1 + int(gap.argmax())
            if gap.max() >= threshold:
                out[b, k, space] = preds[b, k, 0] + 1e-3  # just above blank: argmax is space
    return out


class SpacedDecode:
    """rapidocr's CTC decoder (TextRecognizer.postprocess_op) with restore_spaces before it."""

    def __init__(self, decode: Any, space: int) -> None:
        self.decode, self.space = decode, space
        self.character = decode.character

    def __call__(self, preds: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return self.decode(restore_spaces(preds, self.space), *args, **kwargs)


@dataclass(frozen=True)
class OcrLine:
    """One line of text read from a frame, with its axis-aligned box in the frame's pixels."""

    text: str
    confidence: float
    x: int
    y: int
    width: int
    height: int


# When a line of 6+ letters still came back without a space (restore_spaces found no gap in
# tightly set capitals, the usual meme font: "IWILLFINDYOU"), spaces are put back where the
# gap between two characters' boxes (rapidocr's per-character boxes from the CTC alignment) is
# wider than this fraction of the median character width. Measured on the demo meme (28 px
# DejaVu Sans Bold): gaps inside words 0-8 px, between words 11-13 px, median width 16-19 px.
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


def better_reading(row: list[Any], turned: str, confidence: float) -> list[Any]:
    """rapidocr's row (box, text, confidence[, character boxes]) with the 180°-turned reading
    in place of the upright one when that was read with higher confidence (its character
    boxes, which respace needs, are then unknown); the same row when not."""
    if confidence > float(row[2]) and turned.strip():
        return [row[0], turned, confidence]
    return row


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
        min_confidence: float = MIN_CONFIDENCE,
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
            recogniser = self._engine.text_rec
            if " " in recogniser.postprocess_op.character:
                space = recogniser.postprocess_op.character.index(" ")
                recogniser.postprocess_op = SpacedDecode(recogniser.postprocess_op, space)
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
        # text_score 0: every line comes back, so doubtful ones can be read again below.
        result, _elapsed = engine(bgr, use_cls=False, return_word_box=True, text_score=0.0)
        rows = [list(row) for row in result or ()]
        doubtful = [k for k, row in enumerate(rows) if float(row[2]) < REREAD_BELOW]
        if doubtful:
            points = [np.asarray(rows[k][0], dtype=np.float32) for k in doubtful]
            crops = engine.get_crop_img_list(bgr, points)
            turned, _ = engine.text_rec([np.ascontiguousarray(c[::-1, ::-1]) for c in crops])
            flipped = 0
            for k, (text, confidence) in zip(doubtful, turned, strict=True):
                row = better_reading(rows[k], str(text), float(confidence))
                flipped += row is not rows[k]
                rows[k] = row
            if 2 * flipped > len(rows):
                rows.reverse()  # mostly turned lines: the image is upside down, read bottom up
        lines: list[OcrLine] = []
        for row in rows:
            points, text, confidence = row[0], str(row[1]), float(row[2])
            if not text.strip() or confidence < self.min_confidence:
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
