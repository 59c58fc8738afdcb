"""Process entry of the vision safety service: the template's server
(crossguard.core.serving.server) over open_nsfw, VisionClassifier (with PP-OCR, the text
service for OCR text, and the hash banks) and the image part parser.

`python -m crossguard.vision` runs `main()`; see crossguard.core.serving.server for logs,
telemetry, health, drain on SIGTERM and server processes (CROSSGUARD_VISION_PROCESSES).
"""

from __future__ import annotations

import logging

import numpy as np

from crossguard.core.model_contract import Model
from crossguard.core.model_repository import ModelRepository
from crossguard.core.serving import server as serving
from crossguard.vision.service import VisionClassifier
from crossguard.vision.servicer import parse_parts
from crossguard.vision.settings import VisionServerSettings

SERVICE = "crossguard-vision"
log = logging.getLogger(__name__)


def build_model(settings: VisionServerSettings) -> Model[np.ndarray, float]:
    """open_nsfw over the configured model repository (not loaded yet)."""
    from crossguard.vision.nsfw import OpenNsfwModel

    threads = serving.intra_op_threads(settings)
    model_settings = settings.model.model_copy(update={"onnx_intra_op_threads": threads})
    return OpenNsfwModel(ModelRepository(model_settings.model_repository), model_settings)


def make_classifier(
    model: Model[np.ndarray, float], settings: VisionServerSettings
) -> VisionClassifier:
    from crossguard.vision.clip import ClipModel
    from crossguard.vision.hashbank import HashBankStore
    from crossguard.vision.ocr import OcrModel
    from crossguard.vision.text_client import GrpcTextScorer

    vision = settings.vision
    threads = serving.intra_op_threads(settings)
    model_settings = settings.model.model_copy(update={"onnx_intra_op_threads": threads})
    ocr = (
        OcrModel(
            ModelRepository(model_settings.model_repository),
            model_settings,
            min_confidence=vision.ocr_min_confidence,
        )
        if vision.ocr
        else None
    )
    text = (
        GrpcTextScorer(
            vision.text_endpoint,
            timeout_seconds=vision.text_timeout_seconds,
            max_message_bytes=settings.grpc.max_message_bytes,
        )
        if vision.ocr
        else None
    )
    store = HashBankStore(vision.hash_db.get_secret_value()) if vision.hash_banks else None
    # CLIP: zero-shot scores, and each image's embedding for the consistency service.
    clip = (
        ClipModel(
            vision.clip_model,
            ModelRepository(model_settings.model_repository),
            model_settings,
            prompts=vision.clip_prompts,
        )
        if vision.clip_model
        else None
    )
    return VisionClassifier(
        model, vision, ocr=ocr, text=text, store=store, clip=clip, limits=settings.limits
    )


APP = serving.ClassifierApp(
    service=SERVICE,
    settings=VisionServerSettings,
    build_model=build_model,
    make_classifier=make_classifier,
    parse_parts=parse_parts,
)


def main() -> None:
    serving.main(APP)
