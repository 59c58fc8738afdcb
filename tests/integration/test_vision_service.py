"""The vision classifier with the real weights (open_nsfw, PP-OCR built by `crossguard models
build`), the real decode process pool, a real text service process for OCR text and a real
hash bank. Models and the text service are loaded once for the module."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from crossguard.core.errors import InvalidInput, LimitExceeded, NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.core.processes import ManagedProcess
from crossguard.core.results import (
    DerivedTextEvidence,
    HashMatchEvidence,
    ImageRegion,
    ImageRegionEvidence,
    Modality,
)
from crossguard.core.serving.batch_client import BatchingClassifierClient
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.vision.decode import (
    DecodeTimeout,
    DecompressionBomb,
    ImageDecodeError,
    PolyglotImage,
)
from crossguard.vision.hashbank import BankEntry, HashBankStore
from crossguard.vision.hashing import HashKind, hash_frame
from crossguard.vision.nsfw import OpenNsfwModel
from crossguard.vision.ocr import OcrModel
from crossguard.vision.server import ocr_text_scorer
from crossguard.vision.service import ImagePart, VisionClassifier
from crossguard.vision.settings import DecodeLimits, VisionServiceSettings

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
THREAT = "I will find you and kill you"


@pytest.fixture(scope="module")
def models(model_repository: ModelRepository) -> Iterator[tuple[OpenNsfwModel, OcrModel]]:
    settings = ModelSettings(
        model_repository=model_repository.root,
        onnx_providers="CPUExecutionProvider",
        onnx_intra_op_threads=1,
    )
    nsfw, ocr = OpenNsfwModel(model_repository, settings), OcrModel(model_repository, settings)
    nsfw.load()
    ocr.load()
    yield nsfw, ocr
    nsfw.close()
    ocr.close()


@pytest.fixture(scope="module")
def text_service(
    model_repository: ModelRepository, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """The real text service on a random port, once for the module."""
    proc = ManagedProcess(
        "text",
        "crossguard.text",
        {
            "CROSSGUARD_PORT": "0",
            "CROSSGUARD_HOST": "127.0.0.1",
            "CROSSGUARD_GRACE_SECONDS": "1",
            "CROSSGUARD_LOG_LEVEL": "WARNING",
            "CROSSGUARD_MODEL_REPOSITORY": str(model_repository.root),
            "CROSSGUARD_ONNX_PROVIDERS": "CPUExecutionProvider",
            "CROSSGUARD_ONNX_INTRA_OP_THREADS": "1",
            "CROSSGUARD_TEXT_PROCESSES": "1",
        },
        log_dir=tmp_path_factory.mktemp("text-log"),
    )
    try:
        proc.start(ready="PORT", timeout=120)
        yield proc
    finally:
        proc.kill()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def meme(top: str, bottom: str = "") -> Image.Image:
    """A meme: a photo with captions in a bold font with an outline."""
    import skimage.data

    img = Image.fromarray(skimage.data.coffee()).convert("RGB").resize((720, 480))
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 40)
    for text, y in ((top, 24), (bottom, 410)):
        if text:
            draw.text((24, y), text, font=font, fill="white", stroke_width=3, stroke_fill="black")
    return img


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


@pytest.fixture
async def classifier(
    models: tuple[OpenNsfwModel, OcrModel], text_service: ManagedProcess, tmp_path: Path
) -> AsyncIterator[VisionClassifier]:
    nsfw, ocr = models
    store = HashBankStore(f"sqlite:///{tmp_path / 'banks.db'}")
    text = ocr_text_scorer(f"127.0.0.1:{text_service.port}", deadline_s=30)
    c = VisionClassifier(
        nsfw,
        VisionServiceSettings(decode_workers=2, hash_reload_seconds=0),
        ocr=ocr,
        text=text,
        store=store,
        limits=DecodeLimits(sample_frames=4),
        owns_model=False,
    )
    await c.start()
    yield c
    await c.close()
    await text.close()
    store.close()


async def test_benign_photos_score_low_on_sexual_content(classifier: VisionClassifier) -> None:
    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "colorwheel"]
    parts = [ImagePart(n, jpeg(photo(n)), "image/jpeg") for n in names]
    result = await classifier.analyse("benign", parts)
    nsfw = {
        img.part_id: s.scores[Category.SEXUAL]
        for img in result.images
        for s in img.signals
        if s.model == "open-nsfw"
    }
    assert set(nsfw) == set(names)
    assert max(nsfw.values()) < 0.2, nsfw
    assert ("open-nsfw", "1") in result.models


async def test_ocr_reads_a_meme_and_the_text_models_score_it(
    classifier: VisionClassifier,
) -> None:
    result = await classifier.analyse("meme", [ImagePart("meme", png(meme(THREAT)), "image/png")])
    (image,) = result.images
    (ocr,) = image.ocr
    assert ocr.text.lower() == THREAT.lower()
    line = ocr.lines[0]
    assert 10 <= line.x <= 40 and 15 <= line.y <= 45 and line.width > 300
    text_signal = next(s for s in image.signals if s.model == "ocr+text")
    assert text_signal.scores[Category.VIOLENCE] >= 0.5
    assert "text-heads" in text_signal.version
    # The scores are the text service's: the same text sent directly scores the same.
    assert classifier.text is not None
    direct = await classifier.text.classify_texts("direct", [("t", ocr.text)])
    assert text_signal.scores[Category.VIOLENCE] == pytest.approx(
        direct.score_of(Category.VIOLENCE), abs=1e-6
    )
    final = result.to_classifier_result()
    assert final.score_of(Category.VIOLENCE) == pytest.approx(text_signal.scores[Category.VIOLENCE])
    # Evidence for reviewers: the OCR line with its box and the score it drove first, then
    # open_nsfw's score of the frame.
    first = final.evidence[0]
    assert isinstance(first, DerivedTextEvidence)
    assert first.text.lower() == THREAT.lower() and first.model == "pp-ocr"
    assert first.location == ImageRegion(line.x, line.y, line.width, line.height)
    assert first.weight >= 0.5
    nsfw_evidence = [e for e in final.evidence if isinstance(e, ImageRegionEvidence)]
    assert [(e.model, e.category, e.frame_index) for e in nsfw_evidence] == [
        ("open-nsfw", Category.SEXUAL, 0)
    ]
    assert any(name == "text-heads" for name, _ in result.models)


async def test_benign_caption_stays_low(classifier: VisionClassifier) -> None:
    result = await classifier.analyse(
        "kind", [ImagePart("m", png(meme("Thanks, see you at the picnic!")), "image/png")]
    )
    scores = result.scores()
    assert scores[Category.VIOLENCE] < 0.5 and scores[Category.SEXUAL] < 0.5, scores


async def test_animated_gif_reports_the_frame_with_the_text(classifier: VisionClassifier) -> None:
    frames = [
        *(photo(n).resize((720, 480)) for n in ("chelsea", "rocket", "astronaut")),
        meme(THREAT),
    ]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    result = await classifier.analyse("gif", [ImagePart("anim", buf.getvalue(), "image/gif")])
    (image,) = result.images
    assert image.n_frames == 4 and image.frames_scored == [0, 1, 2, 3]
    text_signal = next(s for s in image.signals if s.model == "ocr+text")
    assert text_signal.frame_index == 3
    assert text_signal.scores[Category.VIOLENCE] >= 0.5
    derived = [
        e for e in result.to_classifier_result().evidence if isinstance(e, DerivedTextEvidence)
    ]
    assert derived and {e.frame_index for e in derived} == {3}


async def test_hash_bank_match_is_its_own_signal(classifier: VisionClassifier) -> None:
    assert classifier.store is not None
    banked = hash_frame(np.asarray(photo("rocket")))
    classifier.store.ensure_bank("known-bad", Category.EXTREMISM)
    classifier.store.add([BankEntry("known-bad", HashKind.PDQ, banked.pdq[0], "case-9")])
    assert await classifier.reload_banks()

    copy = ImageOps.mirror(photo("rocket").resize((384, 256)))
    result = await classifier.analyse(
        "h",
        [
            ImagePart("copy", jpeg(copy, 60), "image/jpeg"),
            ImagePart("other", jpeg(photo("coffee")), "image/jpeg"),
        ],
    )
    by_part = {img.part_id: img for img in result.images}
    match = by_part["copy"].hash_match
    assert match is not None
    assert (match.bank, match.category, match.kind, match.entry_id) == (
        "known-bad",
        Category.EXTREMISM,
        "pdq",
        "case-9",
    )
    assert match.distance <= match.threshold == 31
    assert by_part["other"].hash_match is None
    assert result.scores()[Category.EXTREMISM] == 1.0
    evidence = result.to_classifier_result(max_evidence=1).evidence
    assert evidence == [
        HashMatchEvidence(
            "copy", Category.EXTREMISM, 1.0, "known-bad", match.distance, "case-9", "pdq", 0
        )
    ]


async def test_bad_images_get_clear_errors_and_the_service_goes_on(
    classifier: VisionClassifier,
) -> None:
    good = jpeg(photo("astronaut"))
    bomb_buf = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb_buf, format="PNG")
    cases: list[tuple[bytes, str, type[Exception], str]] = [
        (bomb_buf.getvalue(), "image/png", DecompressionBomb, "CROSSGUARD_VISION_MAX_PIXELS"),
        (good[: len(good) // 2], "image/jpeg", ImageDecodeError, "truncated"),
        (good + b"<script>alert(1)</script>", "image/jpeg", PolyglotImage, "script"),
        (good, "image/png", InvalidInput, "declared 'image/png'"),
    ]
    for data, mime, error, words in cases:
        with pytest.raises(error, match=words):
            await classifier.analyse("bad", [ImagePart("p", data, mime)])
    # One bad part fails its item, not the service: the next request is answered.
    result = await classifier.analyse("ok", [ImagePart("p", good, "image/jpeg")])
    assert result.images[0].format == "JPEG"
    with pytest.raises(LimitExceeded, match="CROSSGUARD_VISION_MAX_PARTS"):
        await classifier.analyse("many", [ImagePart(str(i), good, "image/jpeg") for i in range(17)])


async def test_a_decoder_past_its_time_limit_is_stopped(
    models: tuple[OpenNsfwModel, OcrModel],
) -> None:
    nsfw, _ = models
    c = VisionClassifier(
        nsfw,
        VisionServiceSettings(
            decode_workers=1, decode_timeout_seconds=0.05, ocr=False, hash_banks=False
        ),
        owns_model=False,
    )
    # The warm-up decode (1 px) needs the worker process to start: a wider limit for it.
    c.pool.timeout_seconds = 30
    await c.start()
    c.pool.timeout_seconds = 0.05
    try:
        # A 6000×6000 GIF (8 MB): under every limit, and its LZW stream, palette conversion and
        # scaling take 0.5-0.6 s (measured), well past the limit and pebble's 0.1 s polling.
        ramp = (np.arange(6000) // 24).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(np.broadcast_to(ramp, (6000, 6000)).copy(), "L").save(buf, format="GIF")
        big = buf.getvalue()
        with pytest.raises(DecodeTimeout, match="CROSSGUARD_VISION_DECODE_TIMEOUT_SECONDS"):
            await c.classify("slow", [ImagePart("p", big, "image/gif")])
        # The pool replaced the killed worker.
        c.pool.timeout_seconds = 30
        result = await c.analyse("after", [ImagePart("p", jpeg(photo("coffee")), "image/jpeg")])
        assert result.images[0].width == 600
    finally:
        await c.close()


async def test_ocr_text_goes_through_the_shared_text_client(text_service: ManagedProcess) -> None:
    """Concurrent images' OCR texts go out as one ClassifyBatch call (the shared coalescing
    client); a text the text service refuses is InvalidInput with the server's message."""
    endpoint = f"127.0.0.1:{text_service.port}"
    text = ocr_text_scorer(endpoint, deadline_s=30, batch_max_items=3, batch_max_delay_ms=500)
    try:
        results = await asyncio.gather(
            *(text.classify_texts(f"c{i}", [("f0", f"hello number {i}")]) for i in range(3))
        )
        assert [r.modality for r in results] == [Modality.TEXT] * 3
        client = text.channels.classifier(endpoint, text.retries)
        assert isinstance(client, BatchingClassifierClient)
        assert (client.batches, client.items) == (1, 3)
        with pytest.raises(InvalidInput, match=r"^OCR text: the text service refused the OCR te"):
            await text.classify_texts("long", [("f0", "word " * 4_001)])
    finally:
        await text.close()


async def test_text_service_down_is_not_ready(models: tuple[OpenNsfwModel, OcrModel]) -> None:
    nsfw, ocr = models
    text = ocr_text_scorer("127.0.0.1:9", deadline_s=2, retries=0)
    c = VisionClassifier(
        nsfw,
        VisionServiceSettings(decode_workers=1, hash_banks=False),
        ocr=ocr,
        text=text,
        owns_model=False,
    )
    await c.start()
    try:
        with pytest.raises(NotReady, match="CROSSGUARD_VISION_TEXT_ENDPOINT"):
            await c.analyse("t", [ImagePart("m", png(meme(THREAT)), "image/png")])
        # No text in the image: no call, so the answer comes.
        result = await c.analyse("n", [ImagePart("p", jpeg(photo("chelsea")), "image/jpeg")])
        assert result.images[0].signals[0].model == "open-nsfw"
    finally:
        await c.close()
        await text.close()
