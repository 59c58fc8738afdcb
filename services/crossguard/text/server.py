"""Process entry of the text safety service: the template's server
(crossguard.core.serving.server) over the text model, TextClassifier and the text part parser.

`python -m crossguard.text` runs `main()`; see crossguard.core.serving.server for logs,
telemetry, health, drain on SIGTERM and the server processes (CROSSGUARD_TEXT_PROCESSES).
"""

from __future__ import annotations

import os
from typing import Any

from crossguard.core.grpc_server import GrpcServer
from crossguard.core.model_contract import Model
from crossguard.core.model_repository import ModelRepository
from crossguard.core.serving import server as serving
from crossguard.text.service import Probabilities, TextClassifier
from crossguard.text.servicer import parse_parts
from crossguard.text.settings import TextServerSettings

SERVICE = "crossguard-text"


def build_model(settings: TextServerSettings) -> Model[str, Probabilities]:
    """The production TextModel over the configured model repository (not loaded yet)."""
    from crossguard.text.model import TextModel

    threads = serving.intra_op_threads(settings)
    model_settings = settings.model.model_copy(update={"onnx_intra_op_threads": threads})
    text = settings.text
    options: dict[str, Any] = {
        "max_padding": text.model_max_padding,
        "allow_spinning": text.onnx_spinning,
        "precision": text.encoder_precision,
        "multilingual": text.multilingual,
        "english_encoder": text.english_encoder,
    }
    if serving.uses_cuda(settings):  # large calls, length-bucketed (plan_sub_batches)
        options["sub_batch"] = text.gpu_sub_batch
        options["max_padding"] = text.gpu_max_padding
    elif text.model_sub_batch:
        options["sub_batch"] = text.model_sub_batch
    return TextModel(ModelRepository(model_settings.model_repository), model_settings, **options)


def make_classifier(
    model: Model[str, Probabilities], settings: TextServerSettings
) -> TextClassifier:
    # Models that identify languages (TextModel) report the parts they cannot read.
    return TextClassifier(
        model, settings.text, language_of=getattr(model, "identify_language", None)
    )


def build_server(classifier: TextClassifier, settings: TextServerSettings) -> GrpcServer:
    """A GrpcServer exposing `classifier`; stopping it closes the classifier and its model."""
    return serving.build_server(classifier, parse_parts, settings)


def quiet_tokenizer_threads() -> None:
    """On the CPU, turn off the tokenizers library's own thread pool unless the environment
    says otherwise: batch workers and server processes already keep every CPU busy, and waking
    the pool for a few texts per call costs CPU (measured on 2 cores, 16 clients: 415 vs 355
    items/s, 4.4 vs 5.1 ms of server CPU per text). On CUDA keep it on: batches are large
    (CROSSGUARD_TEXT_GPU_BATCH_MAX) and `encode_batch` tokenises them in parallel on the CPUs
    the GPU leaves free, in the batch worker threads (off the event loop). Inherited by the
    server processes."""
    cuda = serving.uses_cuda(TextServerSettings())
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true" if cuda else "false")


APP = serving.ClassifierApp(
    service=SERVICE,
    settings=TextServerSettings,
    build_model=build_model,
    make_classifier=make_classifier,
    parse_parts=parse_parts,
    prepare_process=quiet_tokenizer_threads,
)


def main() -> None:
    serving.main(APP)
