"""The nsfwjs MobileNetV2 converted to ONNX (an optional entry: `crossguard models build` makes
it where npm and node exist): benign photographs come out Neutral (or Drawing) with low sexual
scores, and it is a second signal of the vision classifier."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.vision.nsfwjs import LABELS, NAME, NsfwjsModel, preprocess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nsfwjs(model_repository: ModelRepository) -> NsfwjsModel:
    if not model_repository.versions(NAME):
        pytest.skip("no nsfwjs entry: `crossguard models build` needs npm and node for it")
    model = NsfwjsModel(
        model_repository,
        ModelSettings(onnx_providers="CPUExecutionProvider", onnx_intra_op_threads=1),
    )
    model.load()
    return model


def photo(name: str) -> np.ndarray:
    import skimage.data

    return np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB"))


def test_preprocess_is_bilinear_with_aligned_corners() -> None:
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[0, 1] = 255  # top-right white
    out = preprocess(img, size=3)
    assert out.shape == (3, 3, 3)
    assert out[0, 2, 0] == pytest.approx(1.0) and out[0, 0, 0] == pytest.approx(0.0)
    assert out[0, 1, 0] == pytest.approx(0.5) and out[1, 1, 0] == pytest.approx(0.25)


def test_benign_photos_are_neutral(nsfwjs: NsfwjsModel) -> None:
    names = ["astronaut", "coffee", "chelsea", "page", "logo"]
    probs = nsfwjs.classes([photo(n) for n in names])
    assert probs.shape == (5, 5)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    for name, row in zip(names, probs, strict=True):
        assert LABELS[int(np.argmax(row))] in ("Neutral", "Drawing"), (name, row)
    scores = nsfwjs.predict([photo(n) for n in names])
    assert max(s[Category.SEXUAL] for s in scores) < 0.2, scores


async def test_nsfwjs_is_a_second_signal(
    nsfwjs: NsfwjsModel, model_repository: ModelRepository
) -> None:
    from crossguard.vision.nsfw import OpenNsfwModel
    from crossguard.vision.service import ImagePart, VisionClassifier
    from crossguard.vision.settings import VisionServiceSettings

    settings = ModelSettings(onnx_providers="CPUExecutionProvider", onnx_intra_op_threads=1)
    classifier = VisionClassifier(
        OpenNsfwModel(model_repository, settings),
        VisionServiceSettings(ocr=False, hash_banks=False, decode_workers=1),
        nsfwjs=nsfwjs,
        owns_model=False,
    )
    await classifier.start()
    try:
        buf = io.BytesIO()
        Image.fromarray(photo("coffee")).save(buf, format="JPEG")
        result = await classifier.analyse("c", [ImagePart("p", buf.getvalue(), "image/jpeg")])
        (image,) = result.images
        models = [s.model for s in image.signals]
        assert models == ["open-nsfw", NAME]
        assert image.signals[1].scores[Category.SEXUAL] < 0.2
        assert (NAME, "1") in result.models
    finally:
        await classifier.close()
