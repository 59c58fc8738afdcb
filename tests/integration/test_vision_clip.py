"""The CLIP backend end to end with a tiny randomly initialised CLIP that the test builds (no
CLIP weights install offline): save the checkpoint, `crossguard models export` it, load it with
the runtime (crossguard.vision.clip), score zero-shot categories and image-text similarity, and
check the runtime's preprocessing and towers against transformers on the same image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.vision.clip import ClipModel, load_prompts, preprocess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def exported(tiny_clip_export: tuple[Path, Path]) -> tuple[Path, ModelRepository]:
    checkpoint, root = tiny_clip_export
    entry = ModelRepository(root).get("tiny-clip")
    assert entry.manifest.task == "clip"
    assert set(entry.manifest.files) == {"model.onnx", "text.onnx", "tokenizer.json"}
    assert entry.manifest.metrics["parity_max_abs_diff"] <= 1e-4
    return checkpoint, ModelRepository(root)


def test_export_load_score(exported: tuple[Path, ModelRepository]) -> None:
    _, repo = exported
    clip = ClipModel("tiny-clip", repo, ModelSettings(onnx_providers="CPUExecutionProvider"))
    clip.load()
    _, per_category = load_prompts()
    assert list(clip.categories) == list(per_category)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    scores = clip.predict(frames)
    assert len(scores) == 3
    for row in scores:
        assert set(row) == set(per_category)
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert Category.SEXUAL in scores[0]
    sims = clip.similarity(frames[:2], ["a photo of a cat", "a chart or diagram", "hello"])
    assert sims.shape == (2, 3)
    assert np.all(np.abs(sims) <= 1.0 + 1e-5)
    clip.close()


def test_runtime_matches_transformers(exported: tuple[Path, ModelRepository]) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    checkpoint, repo = exported
    clip = ClipModel("tiny-clip", repo, ModelSettings(onnx_providers="CPUExecutionProvider"))
    clip.load()
    # A smooth image: resampling differences stay small (noise would magnify them).
    yy, xx = np.mgrid[0:40, 0:56]
    rgb = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).astype(np.uint8)
    processor = transformers.CLIPImageProcessor.from_pretrained(str(checkpoint))
    expected_px = processor(images=rgb, return_tensors="np")["pixel_values"][0]
    ours = preprocess(rgb, repo.get("tiny-clip").manifest.preprocessing)
    # Within a few grey levels of transformers' CLIP image processor (bicubic resampling of
    # the two differs slightly); 0.1 here is about 7 levels of 255.
    assert np.max(np.abs(ours - expected_px)) < 0.1
    model = transformers.CLIPModel.from_pretrained(str(checkpoint)).eval()
    with torch.no_grad():
        ref = model.get_image_features(pixel_values=torch.from_numpy(ours[None])).pooler_output
        ref = (ref / ref.norm(dim=-1, keepdim=True)).numpy()
    got = clip.embed_images([rgb])
    assert np.max(np.abs(got - ref)) < 1e-4
    clip.close()


async def test_clip_is_a_signal_of_the_vision_classifier(
    exported: tuple[Path, ModelRepository], model_repository: ModelRepository
) -> None:
    import io

    from PIL import Image

    from crossguard.vision.nsfw import OpenNsfwModel
    from crossguard.vision.service import ImagePart, VisionClassifier
    from crossguard.vision.settings import VisionServiceSettings

    _, repo = exported
    settings = ModelSettings(onnx_providers="CPUExecutionProvider", onnx_intra_op_threads=1)
    classifier = VisionClassifier(
        OpenNsfwModel(model_repository, settings),
        VisionServiceSettings(ocr=False, hash_banks=False, decode_workers=1),
        clip=ClipModel("tiny-clip", repo, settings),
    )
    await classifier.start()
    try:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, format="PNG")
        result = await classifier.analyse("c", [ImagePart("p", buf.getvalue(), "image/png")])
        (image,) = result.images
        signal = next(s for s in image.signals if s.model == "tiny-clip")
        assert signal.version == "1" and signal.frame_index == 0
        assert Category.EXTREMISM in signal.scores
        assert ("tiny-clip", "1") in result.models
    finally:
        await classifier.close()
