"""Process entry of the text safety service: settings → model → classifier → gRPC server.

`python -m crossguard.text` (or `crossguard` CLI wiring) runs `main()`: JSON logs, telemetry
(service name crossguard-text), the model loaded before the server binds (so health reports
SERVING only once the model can answer), `PORT <n>` on stdout, and on SIGTERM: NOT_SERVING,
drain within CROSSGUARD_GRACE_SECONDS, then the batcher and the model are closed. On CPU it
serves from several processes sharing the port (CROSSGUARD_TEXT_PROCESSES,
crossguard.core.server_processes): one Python process leaves cores idle behind its interpreter
lock (measured on 2 cores, 16 clients: 2 processes × 1 model call about 1.5× one process × 2).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Callable
from typing import Any

from crossguard.core.cpus import available_cpus
from crossguard.core.grpc_server import GrpcServer, serve_forever
from crossguard.core.logging_setup import configure_logging
from crossguard.core.model_repository import ModelRepository
from crossguard.core.onnx_session import CUDA, choose_providers
from crossguard.core.server_processes import serve_in_processes
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry
from crossguard.text.service import TextClassifier, TextModelLike
from crossguard.text.servicer import registration
from crossguard.text.settings import TextServerSettings

SERVICE = "crossguard-text"

log = logging.getLogger(__name__)


def uses_cuda(settings: TextServerSettings) -> bool:
    """Whether the model sessions will run on CUDA (onnxruntime-gpu and a GPU present)."""
    import onnxruntime

    providers = choose_providers(
        settings.model.onnx_providers, onnxruntime.get_available_providers()
    )
    return CUDA in providers


def server_processes(settings: TextServerSettings) -> int:
    """CROSSGUARD_TEXT_PROCESSES, with 0 resolved: 1 on CUDA (one GPU context; batching is what
    pays there), else one process per available CPU, or per CROSSGUARD_ONNX_INTRA_OP_THREADS
    CPUs when that is set."""
    if settings.text.processes:
        return settings.text.processes
    if uses_cuda(settings):
        return 1
    threads = settings.model.onnx_intra_op_threads or 1
    return max(1, available_cpus() // threads)


def default_intra_op_threads(workers: int, cpus: int | None = None) -> int:
    """onnxruntime threads per model call when CROSSGUARD_ONNX_INTRA_OP_THREADS is 0: the CPUs
    shared by the batch workers, at least 1. With spin-waiting off (CROSSGUARD_TEXT_ONNX_SPINNING,
    the default) idle onnxruntime threads leave the CPU to gRPC and tokenisation. Measured on 2
    quiet cores, 16 gRPC clients, 4 interleaved rounds: 2 workers × 1 thread 138-140 items/s,
    1 worker × 2 threads 124 (with spinning 88), 1 worker × 1 thread 89."""
    cpus = cpus or available_cpus()
    return max(1, cpus // max(1, workers))


def cpus_per_process(settings: TextServerSettings) -> int:
    return max(1, available_cpus() // server_processes(settings))


def build_model(settings: TextServerSettings) -> TextModelLike:
    """The production TextModel over the configured model repository (not loaded yet)."""
    from crossguard.text.model import TextModel

    model_settings = settings.model
    if model_settings.onnx_intra_op_threads == 0:
        threads = default_intra_op_threads(settings.text.batch_workers, cpus_per_process(settings))
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
    draining = asyncio.Event()
    return GrpcServer(
        settings.grpc,
        [registration(classifier, settings.grpc.stream_max_in_flight, draining)],
        on_drain=[draining.set],
        on_close=[classifier.close],
    )


ModelFactory = Callable[[], TextModelLike]


async def run(
    settings: TextServerSettings | None = None,
    on_ready: Callable[[int], None] | None = None,
    model_factory: ModelFactory | None = None,
) -> None:
    """Serve until SIGTERM; `model_factory` replaces the configured model (the bench's
    constant model, crossguard.text.grpc_cost)."""
    settings = settings or TextServerSettings()
    model = model_factory() if model_factory is not None else build_model(settings)
    classifier = TextClassifier(model, settings.text)
    await classifier.start()
    server = build_server(classifier, settings)
    await serve_forever(server, on_ready)


def _serve(
    settings: TextServerSettings,
    on_ready: Callable[[int], None] | None,
    model_factory: ModelFactory | None,
) -> None:
    """One serving process: logs, telemetry, run() until SIGTERM."""
    configure_logging(settings.grpc.log_level, service=SERVICE)
    setup_telemetry(SERVICE)
    try:
        asyncio.run(run(settings, on_ready, model_factory))
    finally:
        shutdown_telemetry()


# Serves one process until SIGTERM: (settings, on_ready(port) or None to print `PORT <n>`).
ServeOne = Callable[[TextServerSettings, Callable[[int], None] | None], None]


def serve_child(port: int, on_ready: Callable[[], None], serve_one: ServeOne) -> None:
    """One of several server processes (crossguard.core.server_processes): `serve_one` with
    the environment's settings, bound to the supervisor's port."""
    base = TextServerSettings()
    settings = TextServerSettings(
        text=base.text, grpc=base.grpc.model_copy(update={"port": port}), model=base.model
    )
    serve_one(settings, lambda _port: on_ready())


def quiet_tokenizer_threads() -> None:
    """Turn off the tokenizers library's own thread pool unless the environment says otherwise:
    batch workers and server processes already keep every CPU busy, and waking the pool for a
    few texts per call costs CPU (measured on 2 cores, 16 clients: 415 vs 355 items/s, 4.4 vs
    5.1 ms of server CPU per text). Inherited by the server processes."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main(model_factory: ModelFactory | None = None, serve_one: ServeOne | None = None) -> None:
    """Serve from server_processes() processes. `model_factory` (picklable, called in each
    server process) replaces the configured model: the bench's constant model; `serve_one`
    (picklable) replaces the whole text server in each process: the bench's bare grpc.aio
    floor (both crossguard.text.grpc_cost)."""
    serve_one = serve_one or functools.partial(_serve, model_factory=model_factory)
    quiet_tokenizer_threads()
    settings = TextServerSettings()
    configure_logging(settings.grpc.log_level, service=SERVICE)
    processes = server_processes(settings)
    if processes > 1:
        raise SystemExit(
            serve_in_processes(
                processes,
                functools.partial(serve_child, serve_one=serve_one),
                host=settings.grpc.host,
                port=settings.grpc.port,
                grace_seconds=settings.grpc.grace_seconds,
                name=SERVICE,
            )
        )
    serve_one(settings, None)
