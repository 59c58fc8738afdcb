"""`crossguard eval vision`: what can be measured about the vision service here.

1. Benign false-positive rate at the policy thresholds: benign images (scikit-image's sample
   photographs, and images generated here: charts, screenshots of benign text from the
   validation split, objects on backgrounds) through the vision classifier (open_nsfw, OCR ->
   text models, hash banks empty) and the default policy; a false positive is any decision other
   than allow.
2. The OCR path: labeled texts of the validation split rendered into images (varied fonts,
   sizes, colours and backgrounds), scored through OCR and the text models, against the same
   texts scored directly by the text models: AUPRC of each, side by side, with a paired
   bootstrap interval of the difference, on a "choose" and a "report" half
   (crossguard.models.eval_ocr). Rendering draws what a screen would show: lines wrapped by
   the font's measured width, and characters the font has no glyph for (emoji) left out of
   the image; the direct score is of the text itself, emoji included.

What it cannot measure: recall on explicit or violent imagery (no labeled harmful images exist
here, and none should be generated), hash-bank recall on real known-bad lists. The text models
run in process (crossguard.text.service.TextClassifier), the same code and weights the text
service serves.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from crossguard.core.model_repository import ModelRepository
from crossguard.core.results import ClassifierResult
from crossguard.core.settings import ModelSettings
from crossguard.models.data import Example
from crossguard.models.eval_ocr import (
    BOOTSTRAP_RESAMPLES,
    PARTS,
    AuprcRow,
    OcrRow,
    Progress,
    auprc_table,
    choose_texts,
    format_table,
    make_row,
    part_of,
)
from crossguard.policy.engine import Action, decide
from crossguard.policy.loader import default_policy
from crossguard.vision.service import ImagePart, VisionClassifier, VisionResult

if TYPE_CHECKING:
    from crossguard.text.service import TextClassifier

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
]
# Re-posted copies per sample photo, and generated charts and object drawings, in the benign
# set: with none flagged, ~300 images bound the false-positive rate below 1% (95%, one-sided).
PHOTO_VARIANTS = 12
CHARTS = 24
OBJECTS = 24
SKIMAGE_SAMPLES = [
    "astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "horse", "coins", "moon",
    "page", "text", "clock", "colorwheel", "logo", "brick", "grass", "gravel", "hubble_deep_field",
    "immunohistochemistry", "retina",
]  # fmt: skip
# Everyday messages for the screenshots of the benign set (the labeled data's negatives are not
# all benign: "not annotated as harmful" includes rough language the policy may escalate).
BENIGN_MESSAGES = [
    "Thanks for the tips, the recipe turned out great!",
    "Does anyone know when the library opens on Sunday?",
    "Meeting moved to 3pm, same room. Bring the quarterly numbers please.",
    "Happy birthday! Hope you have a wonderful day with the family.",
    "The train is running ten minutes late, save me a seat.",
    "Can you send me the link to the photos from the hike?",
    "Reminder: the school concert starts at 6:30 in the main hall.",
    "I just finished the book you lent me, the ending was so good.",
    "Order #4821 has shipped and will arrive on Thursday.",
    "Great game last night, see you at practice on Monday!",
]
# Rendered texts are cut here: a screenshot of a whole essay would be a very tall image.
MAX_RENDER_CHARS = 400
# OpenAI validation (182) + 58 Davidson tweets: enough for a paired interval of about ±2 points
# on "any"; 0.2-0.26 texts/s measured on the shared 2 cores at load 15 (--ocr-texts for fewer).
DEFAULT_OCR_TEXTS = 240


def _font(path: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        return ImageFont.load_default(size=size)


# Characters that draw nothing on screen (zero-width joiners and spaces, variation selectors,
# soft hyphens); DejaVu draws a glyph for some of them that a phone would not show.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Co", "Cn"}


def _notdef(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> bytes:
    return bytes(font.getmask("\U0010fffd"))  # a noncharacter: every font draws .notdef


def drawable(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> str:
    """`text` less what a screen would not show with this font: invisible format characters,
    and characters the font has no glyph for (emoji here: no colour-emoji font is installed).
    A meme shows an emoji as a picture OCR cannot read, never as a tofu box that OCR reads as
    a letter, so leaving it out is the honest rendering."""
    notdef = _notdef(font)
    kept = []
    for ch in text:
        if ch.isspace():
            kept.append(" ")
        elif unicodedata.category(ch) in _INVISIBLE_CATEGORIES or 0xFE00 <= ord(ch) <= 0xFE0F:
            continue
        elif bytes(font.getmask(ch)) != notdef:
            kept.append(ch)
    return " ".join("".join(kept).split())


def wrap_pixels(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float
) -> list[str]:
    """Greedy word wrap by the font's measured advance, so that no line runs past `width` px
    (a character-count wrap cut the right end off most lines of bold and monospaced fonts).
    A word wider than a line is broken between characters."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for ch in word:
            if line and font.getlength(line + ch) > width:
                lines.append(line)
                line = ""
            line += ch
    if line:
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    text: str  # what was drawn, line breaks as spaces
    style: str  # font file, size and background style


def render(text: str, rng: np.random.Generator, width: int = 720) -> Rendered:
    """`text` as an image: a random font, size, colours and a plain, gradient or noisy
    background (what a screenshot or a text meme looks like), wrapped to fit the width."""
    size = int(rng.integers(18, 34))
    path = FONTS[int(rng.integers(len(FONTS)))]
    font = _font(path, size)
    drawn = drawable(text, font)
    lines = wrap_pixels(drawn, font, width - 40) or [" "]
    height = 40 + len(lines) * int(size * 1.4)
    style = int(rng.integers(4))
    if style == 0:
        bg, fg = (255, 255, 255), (0, 0, 0)
    elif style == 1:
        bg, fg = (30, 30, 36), (240, 240, 240)
    elif style == 2:
        r, g, b = (int(v) for v in rng.integers(170, 255, 3))
        bg, fg = (r, g, b), (20, 20, 60)
    else:
        bg, fg = (240, 236, 225), (60, 20, 20)
    img = Image.new("RGB", (width, height), bg)
    if style == 2:  # a gentle gradient
        ramp = np.linspace(0.85, 1.0, width, dtype=np.float32)[None, :, None]
        arr = (np.asarray(img, dtype=np.float32) * ramp).astype(np.uint8)
        img = Image.fromarray(arr)
    draw = ImageDraw.Draw(img)
    y = 20
    for line in lines:
        draw.text((20, y), line, font=font, fill=fg)
        y += int(size * 1.4)
    name = path.rsplit("/", 1)[-1].removesuffix(".ttf")
    return Rendered(img, " ".join(lines), f"{name} {size}px bg{style}")


def render_text(text: str, rng: np.random.Generator, width: int = 720) -> Image.Image:
    return render(text, rng, width).image


def chart(rng: np.random.Generator, kind: str) -> Image.Image:
    img = Image.new("RGB", (640, 400), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.line([(50, 350), (620, 350)], fill=(0, 0, 0), width=2)
    d.line([(50, 30), (50, 350)], fill=(0, 0, 0), width=2)
    values = rng.integers(20, 300, 8)
    font = _font(FONTS[0], 14)
    if kind == "bar":
        for i, v in enumerate(values):
            x = 70 + i * 68
            colour = tuple(int(c) for c in rng.integers(40, 220, 3))
            d.rectangle([x, 350 - int(v), x + 40, 350], fill=colour)
            d.text((x, 355), f"Q{i + 1}", font=font, fill=(0, 0, 0))
    else:
        points = [(70 + i * 75, 350 - int(v)) for i, v in enumerate(values)]
        d.line(points, fill=(20, 90, 200), width=3)
        for x, y in points:
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(200, 50, 50))
    d.text((60, 8), "Monthly active users", font=_font(FONTS[1], 18), fill=(0, 0, 0))
    return img


def objects(rng: np.random.Generator) -> Image.Image:
    """Everyday-looking objects: shaded shapes on a table-like background."""
    img = Image.new("RGB", (600, 400), tuple(int(c) for c in rng.integers(120, 200, 3)))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 260, 600, 400], fill=tuple(int(c) for c in rng.integers(60, 140, 3)))
    for _ in range(5):
        x, y = int(rng.integers(20, 480)), int(rng.integers(120, 280))
        w, h = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        if rng.random() < 0.5:
            d.ellipse([x, y, x + w, y + h], fill=colour, outline=(0, 0, 0))
        else:
            d.rounded_rectangle([x, y, x + w, y + h], 12, fill=colour, outline=(0, 0, 0))
    return img


def screenshot(text: str, rng: np.random.Generator) -> Image.Image:
    """A chat-app-like screenshot around a benign message."""
    body = render_text(text, rng, width=600)
    img = Image.new("RGB", (640, body.height + 90), (245, 246, 250))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, 640, 44], fill=(50, 100, 190))
    d.text((16, 12), "Messages", font=_font(FONTS[1], 18), fill=(255, 255, 255))
    img.paste(body, (20, 60))
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def variant(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A re-posted copy of a photo as platforms see them: cropped (60-100% of each side),
    maybe mirrored, brightness and contrast shifted, rescaled (long side 256-1024 px) and
    recompressed as JPEG (quality 40-95)."""
    from PIL import ImageEnhance, ImageOps

    img = img.convert("RGB")
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    scale = int(rng.integers(256, 1025)) / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(40, 96)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _photos() -> list[tuple[str, str, Image.Image]]:
    """(source, name, image): scikit-image's samples and scikit-learn's two sample photos."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out: list[tuple[str, str, Image.Image]] = []
    for name in SKIMAGE_SAMPLES:
        arr = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
        if arr.max() <= 1.0:  # boolean or [0, 1] float samples
            arr = arr * 255.0
        out.append(("scikit-image", name, Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))))
    samples = load_sample_images()
    for path, arr in zip(samples.filenames, samples.images, strict=True):
        out.append(("scikit-learn", Path(path).stem, Image.fromarray(arr)))
    return out


def benign_images(
    seed: int = 0, photo_variants: int = PHOTO_VARIANTS
) -> list[tuple[str, str, bytes]]:
    """(source, name, PNG bytes) of the benign set: the sample photos as they are and
    `photo_variants` re-posted copies of each, charts, screenshots of everyday messages, and
    drawings of objects."""
    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, bytes]] = []
    photos = _photos()
    for source, name, img in photos:
        out.append((source, name, _png(img)))
    for source, name, img in photos:
        for k in range(photo_variants):
            out.append((f"{source} copies", f"{name}-{k}", _png(variant(img, rng))))
    for i in range(CHARTS):
        out.append(("chart", f"chart-{i}", _png(chart(rng, "bar" if i % 2 else "line"))))
    for i, text in enumerate(BENIGN_MESSAGES):
        out.append(("screenshot", f"screenshot-{i}", _png(screenshot(text, rng))))
    for i in range(OBJECTS):
        out.append(("objects", f"objects-{i}", _png(objects(rng))))
    return out


def upper_bound(failures: int, n: int, confidence: float = 0.95) -> float:
    """One-sided Clopper-Pearson upper confidence bound of a rate seen as failures/n."""
    from scipy.stats import beta

    if n == 0:
        return 1.0
    return 1.0 if failures >= n else float(beta.ppf(confidence, failures + 1, n - failures))


class InProcessText:
    """TextScorer over the text classifier in this process (crossguard.text.service)."""

    def __init__(self, classifier: object) -> None:
        self.classifier = classifier

    async def classify_texts(
        self, content_id: str, parts: Sequence[tuple[str, str]]
    ) -> ClassifierResult:
        return await self.classifier.classify(content_id, list(parts))  # type: ignore[attr-defined,no-any-return]

    async def close(self) -> None:
        return None


@dataclass
class VisionEvalReport:
    benign: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    ocr_rows: list[OcrRow] = field(default_factory=list)
    auprc: list[AuprcRow] = field(default_factory=list)
    seconds: float = 0.0
    models: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ocr_similarity(self) -> float:
        """Mean character similarity (difflib ratio, case-folded) of OCR text to drawn text."""
        return sum(r.similarity for r in self.ocr_rows) / max(1, len(self.ocr_rows))

    @property
    def false_positives(self) -> int:
        return sum(1 for _, _, action, _ in self.benign if action != Action.ALLOW.value)


async def _run(
    limit_ocr: int,
    seed: int,
    progress: Callable[[str], None],
    benign: bool,
    parts: Sequence[str],
    photo_variants: int = PHOTO_VARIANTS,
) -> VisionEvalReport:
    from crossguard.text.model import TextModel
    from crossguard.text.service import TextClassifier
    from crossguard.text.settings import TextServiceSettings
    from crossguard.vision.nsfw import OpenNsfwModel
    from crossguard.vision.ocr import OcrModel
    from crossguard.vision.settings import VisionServiceSettings

    t0 = time.perf_counter()
    settings = ModelSettings()
    repo = ModelRepository(settings.model_repository)
    text_classifier = TextClassifier(
        TextModel(repo, settings), TextServiceSettings(evidence_passes=0)
    )
    await text_classifier.start()
    text = InProcessText(text_classifier)
    from crossguard.vision.nsfwjs import NAME as NSFWJS
    from crossguard.vision.nsfwjs import NsfwjsModel

    vision = VisionClassifier(
        OpenNsfwModel(repo, settings),
        VisionServiceSettings(hash_banks=False, decode_workers=2),
        ocr=OcrModel(repo, settings),
        text=text,
        # The second opinion, as the service uses it, when its optional entry was built.
        nsfwjs=NsfwjsModel(repo, settings) if repo.versions(NSFWJS) else None,
    )
    await vision.start()
    policy = default_policy()
    report = VisionEvalReport()
    try:
        images = benign_images(seed, photo_variants) if benign else []
        if images:
            progress(f"benign set: {len(images)} images")
        for done, (source, name, data) in enumerate(images, 1):
            if done % 50 == 0:
                progress(f"benign set: {done}/{len(images)} images")
            result: VisionResult = await vision.analyse(name, [ImagePart(name, data, "image/png")])
            decision = decide(policy, _Item(), [result.to_classifier_result()], [])
            flagged = [h.rule for h in decision.hits]
            report.benign.append((source, name, decision.action.value, flagged))
        report.models = [*vision.model_infos, *text_classifier.model_infos]

        rng = np.random.default_rng(seed + 1)
        chosen = choose_texts(limit_ocr)
        if chosen:
            progress(f"OCR path: {len(chosen)} validation texts rendered into images")
        ticker = Progress(len(chosen), progress, time.perf_counter)
        for i, e in enumerate(chosen):
            # Every text draws its rendering from the generator, so a text looks the same
            # whichever parts are run.
            cut = " ".join(e.text[:MAX_RENDER_CHARS].split())
            drawn = render(cut, rng)
            if part_of(e.text) in parts:
                row = await _score(e, cut, drawn, i, text_classifier, vision)
                report.ocr_rows.append(row)
            ticker.step(i + 1)
        report.auprc = auprc_table(report.ocr_rows)
    finally:
        await vision.close()
        await text_classifier.close()
    report.seconds = time.perf_counter() - t0
    return report


async def _score(
    e: Example,
    cut: str,
    drawn: Rendered,
    i: int,
    text: TextClassifier,
    vision: VisionClassifier,
) -> OcrRow:
    """`cut` scored directly, and its rendering through OCR and the text models."""
    d = await text.classify(f"d{i}", [(str(i), cut)])
    r = await vision.analyse(f"o{i}", [ImagePart(str(i), _png(drawn.image), "image/png")])
    (image,) = r.images
    signal = next((s for s in image.signals if s.model == "ocr+text"), None)
    read = " ".join(" ".join(f.text.split()) for f in image.ocr)
    similarity = difflib.SequenceMatcher(None, read.lower(), drawn.text.lower()).ratio()
    direct = {s.category: s.score for s in d.scores}
    via_ocr = dict(signal.scores) if signal else {}
    return make_row(e, drawn.text, read, similarity, direct, via_ocr, drawn.style)


class _Item:
    tenant = "default"
    surface = "comment"


def eval_vision(
    limit_ocr: int = DEFAULT_OCR_TEXTS,
    seed: int = 0,
    progress: Callable[[str], None] = print,
    *,
    benign: bool = True,
    parts: Sequence[str] = PARTS,
    photo_variants: int = PHOTO_VARIANTS,
) -> VisionEvalReport:
    return asyncio.run(_run(limit_ocr, seed, progress, benign, parts, photo_variants))


def format_vision_report(report: VisionEvalReport) -> str:
    lines: list[str] = []
    if report.benign:
        lines += _benign_lines(report)
    if report.ocr_rows:
        lines += _ocr_lines(report)
    lines += [
        "",
        "Not measured here: recall on explicit or violent imagery (no labeled harmful images are "
        "available, and none are generated), and hash-bank recall on real known-bad lists.",
        f"models: {', '.join(f'{a}/{b}' for a, b in report.models)}; {report.seconds:.0f}s",
    ]
    return "\n".join(lines)


def _benign_lines(report: VisionEvalReport) -> list[str]:
    total = len(report.benign)
    fp = report.false_positives
    lines = [
        f"Benign false-positive rate at the default policy's thresholds: {fp}/{total} = "
        f"{fp / max(1, total):.1%} (95% upper bound {upper_bound(fp, total):.1%}, one-sided "
        "Clopper-Pearson)",
        "",
        f"{'source':<14}{'images':>7}{'not allowed':>13}",
    ]
    for source in dict.fromkeys(s for s, _, _, _ in report.benign):
        rows = [r for r in report.benign if r[0] == source]
        bad = sum(1 for r in rows if r[2] != Action.ALLOW.value)
        lines.append(f"{source:<14}{len(rows):>7}{bad:>13}")
    for source, name, action, rules in report.benign:
        if action != Action.ALLOW.value:
            lines.append(f"  {source}/{name}: {action} ({', '.join(rules)})")
    return lines


def _ocr_lines(report: VisionEvalReport) -> list[str]:
    counts = {p: sum(1 for r in report.ocr_rows if r.part == p) for p in PARTS}
    return [
        "",
        f"OCR path: {len(report.ocr_rows)} validation texts (first {MAX_RENDER_CHARS} characters; "
        f"choose {counts['choose']}, report {counts['report']}) rendered into images; OCR text "
        f"matches the drawn text at {report.ocr_similarity:.1%} character similarity (mean)",
        *format_table(report.auprc),
        f"(95% CI: paired bootstrap over texts, {BOOTSTRAP_RESAMPLES} resamples)",
    ]
