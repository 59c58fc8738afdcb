"""`crossguard bench vision`: images/s and latency per model, raw onnxruntime against the gRPC
service.

Raw rows call the models in this process on decoded frames: open_nsfw at batch 1, 8 and 32
(preprocessing included, one onnxruntime call per batch), PP-OCR on one image at a time (the
pipeline has no batch dimension across images). Service rows run `python -m crossguard.vision`
(with a text service for OCR text) and drive it with 1, 8 and 32 closed-loop clients sending one
image each: JPEG photos (no text), and memes (text read and scored by the text service).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console
from rich.table import Table

from crossguard.bench.load import BenchRow, measure_payloads, start_server
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings

BATCHES = (1, 8, 32)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def photos() -> list[Image.Image]:
    import skimage.data

    names = ("astronaut", "coffee", "chelsea", "rocket")
    return [Image.fromarray(getattr(skimage.data, n)()).convert("RGB") for n in names]


def memes() -> list[Image.Image]:
    out = []
    for i, (top, bottom) in enumerate(
        [("WHEN THE CODE COMPILES", "ON THE FIRST TRY"), ("MONDAY MORNING", "AGAIN")]
    ):
        img = photos()[i].resize((640, 480))
        d = ImageDraw.Draw(img)
        font = ImageFont.truetype(FONT, 36)
        d.text((20, 16), top, font=font, fill="white", stroke_width=3, stroke_fill="black")
        d.text((20, 420), bottom, font=font, fill="white", stroke_width=3, stroke_fill="black")
        out.append(img)
    return out


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _timed(name: str, note: str, fn: Callable[[], int], seconds: float) -> BenchRow:
    """Call `fn` (returns images done) repeatedly for `seconds`; latency per call."""
    fn()  # warm-up
    latencies: list[float] = []
    done = 0
    t_end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        done += fn()
        latencies.append((time.perf_counter() - t0) * 1000.0)
    elapsed = time.perf_counter() - start
    lat = np.asarray(latencies)
    return BenchRow(
        name,
        done / elapsed,
        float(np.percentile(lat, 50)),
        float(np.percentile(lat, 99)),
        note,
        lat,
    )


def raw_rows(seconds: float) -> list[BenchRow]:
    from crossguard.vision.nsfw import OpenNsfwModel
    from crossguard.vision.ocr import OcrModel

    settings = ModelSettings(onnx_providers="auto")
    repo = ModelRepository(settings.model_repository)
    nsfw = OpenNsfwModel(repo, settings)
    nsfw.load()
    ocr = OcrModel(repo, settings)
    ocr.load()
    frames = [np.asarray(img) for img in photos()]
    rows: list[BenchRow] = []
    for batch in BATCHES:
        items = [frames[i % len(frames)] for i in range(batch)]
        rows.append(
            _timed(
                "raw open_nsfw",
                f"batch {batch}",
                lambda items=items: len(nsfw.predict(items)),  # type: ignore[misc]
                seconds,
            )
        )
    meme_frames = [np.asarray(img) for img in memes()]
    for label, pool in (("photos", frames), ("memes", meme_frames)):
        turn = iter(range(1 << 30))
        rows.append(
            _timed(
                "raw PP-OCR",
                f"1 image, {label}",
                lambda pool=pool, turn=turn: len([ocr.read(pool[next(turn) % len(pool)])]),  # type: ignore[misc]
                seconds,
            )
        )
    return rows


def service_rows(seconds: float, concurrency: Sequence[int]) -> list[BenchRow]:
    from crossguard.v1 import classifier_pb2, content_pb2

    repo = str(ModelSettings().model_repository.resolve())
    common = {"CROSSGUARD_MODEL_REPOSITORY": repo}
    text = start_server("text", "crossguard.text", common)
    rows: list[BenchRow] = []
    try:
        vision = start_server(
            "vision",
            "crossguard.vision",
            {
                **common,
                "CROSSGUARD_VISION_TEXT_ENDPOINT": f"127.0.0.1:{text.port}",
                "CROSSGUARD_VISION_HASH_BANKS": "false",
            },
        )
        try:
            for label, images in (("photos", photos()), ("memes", memes())):
                payloads = [
                    classifier_pb2.ClassifyRequest(
                        content_id=f"bench-{i}",
                        parts=[
                            content_pb2.ContentPart(
                                part_id="img",
                                media=content_pb2.Media(
                                    mime_type="image/jpeg", inline_data=_jpeg(img)
                                ),
                            )
                        ],
                    ).SerializeToString()
                    for i, img in enumerate(images)
                ]
                for clients in concurrency:
                    row = measure_payloads(vision.port, payloads, seconds, clients)
                    rows.append(
                        BenchRow(
                            "service",
                            row.items_per_s,
                            row.p50_ms,
                            row.p99_ms,
                            f"{clients} clients, {label}",
                        )
                    )
        finally:
            vision.stop()
    finally:
        text.stop()
    return rows


def run_bench_vision(seconds: float) -> int:
    console = Console()
    table = Table(
        "path",
        "setting",
        "images/s",
        "p50 ms",
        "p99 ms",
        title=f"vision: raw onnxruntime vs the gRPC service ({os.cpu_count()} CPUs; p50/p99 per "
        "call: a batch for raw open_nsfw, a request for the service)",
    )
    rows = raw_rows(seconds) + service_rows(seconds, BATCHES)
    for r in rows:
        table.add_row(
            r.name,
            r.note,
            f"{r.items_per_s:.1f}",
            f"{r.p50_ms:.0f}" if r.p50_ms is not None else "-",
            f"{r.p99_ms:.0f}" if r.p99_ms is not None else "-",
        )
    console.print(table)
    return 0
