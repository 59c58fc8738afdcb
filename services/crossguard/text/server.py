"""Process entry of the text safety service: settings → model → classifier → gRPC server.

`python -m crossguard.text` (or `crossguard` CLI wiring) runs `main()`: JSON logs, telemetry
(service name crossguard-text), the model loaded before the server binds (so health reports
SERVING only once the model can answer), `PORT <n>` on stdout, and on SIGTERM: NOT_SERVING,
drain within CROSSGUARD_GRACE_SECONDS, then the batcher and the model are closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from crossguard.core.grpc_server import GrpcServer, serve_forever
from crossguard.core.logging_setup import configure_logging
from crossguard.core.model_repository import ModelRepository
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
from crossguard.text.service import TextClassifier, TextModelLike
from crossguard.text.servicer import registration
from crossguard.text.settings import TextServerSettings

SERVICE = "crossguard-text"

log = logging.getLogger(__name__)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_intra_op_threads(workers: int, cpus: int | None = None) -> int:
    """onnxruntime threads per model call when CROSSGUARD_ONNX_INTRA_OP_THREADS is 0: the CPUs
    shared by the batch workers, at least 1. With spin-waiting off (CROSSGUARD_TEXT_ONNX_SPINNING,
    the default) idle onnxruntime threads leave the CPU to gRPC and tokenisation. Measured on 2
    quiet cores, 16 gRPC clients, 4 interleaved rounds: 2 workers × 1 thread 138-140 items/s,
    1 worker × 2 threads 124 (with spinning 88), 1 worker × 1 thread 89."""
    cpus = cpus or available_cpus()
    return max(1, cpus // max(1, workers))


def build_model(settings: TextServerSettings) -> TextModelLike:
    """The production TextModel over the configured model repository (not loaded yet)."""
    from crossguard.text.model import TextModel

    model_settings = settings.model
    if model_settings.onnx_intra_op_threads == 0:
        threads = default_intra_op_threads(settings.text.batch_workers)
        model_settings = model_settings.model_copy(update={"onnx_intra_op_threads": threads})
    repository = ModelRepository(model_settings.model_repository)
    text = settings.text
    options: dict[str, Any] = {
        "max_padding": text.model_max_padding,
        "allow_spinning": text.onnx_spinning,
        "precision": text.encoder_precision,
    }
    if text.model_sub_batch:
        options["sub_batch"] = text.model_sub_batch
    return TextModel(repository, model_settings, **options)


def build_server(classifier: TextClassifier, settings: TextServerSettings) -> GrpcServer:
    """A GrpcServer exposing `classifier`; stopping it closes the classifier and its model."""
    return GrpcServer(settings.grpc, [registration(classifier)], on_close=[classifier.close])


async def run(settings: TextServerSettings | None = None) -> None:
    settings = settings or TextServerSettings()
    classifier = TextClassifier(build_model(settings), settings.text)
    await classifier.start()
    server = build_server(classifier, settings)
    await serve_forever(server)


def main() -> None:
    settings = TextServerSettings()
    configure_logging(settings.grpc.log_level, service=SERVICE)
    setup_telemetry(SERVICE)
    try:
        asyncio.run(run(settings))
    finally:
        shutdown_telemetry()
