"""Process entry of the vision safety service: the template's server
(crossguard.core.serving.server) over open_nsfw, VisionClassifier (with PP-OCR, the text
service for OCR text, and the hash banks) and the image part parser.

`python -m crossguard.vision` runs `main()`; see crossguard.core.serving.server for logs,
telemetry, health, drain on SIGTERM and server processes (CROSSGUARD_VISION_PROCESSES).
"""

from __future__ import annotations

import logging

import numpy as np

from crossguard.core.grpc_channels import ChannelPool
from crossguard.core.model_contract import Model
from crossguard.core.model_repository import ModelRepository
from crossguard.core.remote_text import RemoteTextScorer
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


def ocr_text_scorer(
    endpoint: str,
    *,
    deadline_s: float,
    max_message_bytes: int = 16 * 1024 * 1024,
    retries: int = 2,
    batch_max_items: int = 1,
    batch_max_delay_ms: float = 0.0,
) -> RemoteTextScorer:
    """The shared remote text client (core.remote_text) as the OCR text scorer: the
    text service down or late fails the image request with UNAVAILABLE, a refusal is
    INVALID_ARGUMENT."""
    channels = ChannelPool(
        max_message_bytes=max_message_bytes,
        initial_backoff_ms=50,
        classify_batch_max_items=batch_max_items,
        classify_batch_max_delay_ms=batch_max_delay_ms,
    )
    return RemoteTextScorer(
        endpoint,
        deadline_s=deadline_s,
        channels=channels,
        retries=retries,
        label="OCR text",
        texts="the OCR text",
        hint="CROSSGUARD_VISION_TEXT_ENDPOINT",
    )


def make_classifier(
    model: Model[np.ndarray, float], settings: VisionServerSettings
) -> VisionClassifier:
    from crossguard.vision.clip import ClipModel
    from crossguard.vision.hashbank import HashBankStore
    from crossguard.vision.nsfwjs import NAME as NSFWJS
    from crossguard.vision.nsfwjs import NsfwjsModel
    from crossguard.vision.ocr import OcrModel

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
        ocr_text_scorer(
            vision.text_endpoint,
            deadline_s=vision.text_timeout_seconds,
            max_message_bytes=settings.grpc.max_message_bytes,
            batch_max_items=vision.text_batch_max_items,
            batch_max_delay_ms=vision.text_batch_max_delay_ms,
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
    # nsfwjs: a second opinion on sexual content, where its optional entry was built.
    repository = ModelRepository(model_settings.model_repository)
    nsfwjs = (
        NsfwjsModel(repository, model_settings)
        if vision.nsfwjs and repository.versions(NSFWJS)
        else None
    )
    return VisionClassifier(
        model,
        vision,
        ocr=ocr,
        text=text,
        store=store,
        nsfwjs=nsfwjs,
        clip=clip,
        limits=settings.limits,
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
