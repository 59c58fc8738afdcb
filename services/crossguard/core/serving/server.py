"""Process entry of every classifier service: settings → model → classifier → gRPC server.

A modality describes itself as a ClassifierApp (its settings from the environment, build_model,
make_classifier, part parser) and its `python -m crossguard.<modality>` calls `main(app)`: JSON
logs, telemetry (service name app.service), the model loaded before the server binds (so
health reports SERVING only once the model can answer), health and reflection, `PORT <n>` on
stdout, and on SIGTERM: NOT_SERVING, drain within CROSSGUARD_GRACE_SECONDS, then the batcher and
the model are closed. On CPU it serves from several processes sharing the port
(<PREFIX>PROCESSES, crossguard.core.server_processes): one Python process leaves cores idle
behind its interpreter lock (measured for text on 2 cores, 16 clients: 2 processes × 1 model
call about 1.5× one process × 2).
"""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from crossguard.core.cpus import available_cpus
from crossguard.core.grpc_server import GrpcServer, serve_forever
from crossguard.core.logging_setup import configure_logging
from crossguard.core.model_contract import Model
from crossguard.core.onnx_session import CUDA, choose_providers
from crossguard.core.server_processes import serve_in_processes
from crossguard.core.serving.classifier import BatchedClassifier
from crossguard.core.serving.servicer import PartParser, registration
from crossguard.core.serving.serving_settings import ServerSettings
from crossguard.core.telemetry import setup_telemetry, shutdown_telemetry

log = logging.getLogger(__name__)

SS = TypeVar("SS", bound=ServerSettings[Any])
AnyClassifier = BatchedClassifier[Any, Any, Any]


@dataclass(frozen=True)
class ClassifierApp(Generic[SS]):
    """What a modality's service is made of. Every field must be picklable (a module-level
    function or class, or a functools.partial of one): server processes are spawned with it.

    service: the OpenTelemetry service and process name (e.g. "crossguard-text").
    settings: reads the ServerSettings from the environment.
    build_model: the Model for those settings (not loaded yet: the classifier loads it).
    make_classifier: the classifier over that model (not started yet).
    parse_parts: the part parser (crossguard.core.serving.servicer.PartParser).
    prepare_process: called first in the supervisor (inherited by every server process),
        e.g. to set environment defaults for native libraries.
    """

    service: str
    settings: Callable[[], SS]
    build_model: Callable[[SS], Model[Any, Any]]
    make_classifier: Callable[[Model[Any, Any], SS], AnyClassifier]
    parse_parts: PartParser[Any]
    prepare_process: Callable[[], None] | None = None


# --- sizing ----------------------------------------------------------------------------------


def uses_cuda(settings: ServerSettings[Any]) -> bool:
    """Whether the model sessions will run on CUDA (onnxruntime-gpu and a GPU present)."""
    import onnxruntime

    providers = choose_providers(
        settings.model.onnx_providers, onnxruntime.get_available_providers()
    )
    return CUDA in providers


def gpu_processes(cpus: int) -> int:
    """Front-end processes for one GPU when <PREFIX>GPU_PROCESSES is 0: a quarter of the CPUs,
    1 to 8. Each process parses, tokenises and answers for the GPU (about 0.2 ms of CPU per
    item in batches, against a few microseconds of GPU time per short text), with its own
    GPU context. Not measured on a GPU yet (docs/deployment.md)."""
    return max(1, min(8, cpus // 4))


def server_processes(settings: ServerSettings[Any]) -> int:
    """<PREFIX>PROCESSES, with 0 resolved: on CUDA <PREFIX>GPU_PROCESSES (0: gpu_processes),
    else one process per available CPU, or per CROSSGUARD_ONNX_INTRA_OP_THREADS CPUs when that
    is set."""
    if settings.service.processes:
        return int(settings.service.processes)
    if uses_cuda(settings):
        return int(settings.service.gpu_processes) or gpu_processes(available_cpus())
    threads = settings.model.onnx_intra_op_threads or 1
    return max(1, available_cpus() // threads)


def for_device(settings: SS) -> SS:
    """The settings a process serves with: on CUDA the GPU batch size and batch workers
    (<PREFIX>GPU_BATCH_MAX, <PREFIX>GPU_BATCH_WORKERS) replace the CPU ones."""
    if not uses_cuda(settings):
        return settings
    service = settings.service.model_copy(
        update={
            "batch_max": settings.service.gpu_batch_max,
            "batch_workers": settings.service.gpu_batch_workers,
        }
    )
    adjusted = copy.copy(settings)
    adjusted.service = service
    return adjusted


def default_intra_op_threads(workers: int, cpus: int | None = None) -> int:
    """onnxruntime threads per model call when CROSSGUARD_ONNX_INTRA_OP_THREADS is 0: the CPUs
    shared by the batch workers, at least 1. With spin-waiting off idle onnxruntime threads
    leave the CPU to gRPC and input preparation. Measured for text on 2 quiet cores, 16 gRPC
    clients, 4 interleaved rounds: 2 workers × 1 thread 138-140 items/s, 1 worker × 2 threads
    124 (with spinning 88), 1 worker × 1 thread 89."""
    cpus = cpus or available_cpus()
    return max(1, cpus // max(1, workers))


def cpus_per_process(settings: ServerSettings[Any]) -> int:
    return max(1, available_cpus() // server_processes(settings))


def intra_op_threads(settings: ServerSettings[Any]) -> int:
    """CROSSGUARD_ONNX_INTRA_OP_THREADS, with 0 resolved by default_intra_op_threads for this
    process's share of the CPUs (for a modality's build_model)."""
    if settings.model.onnx_intra_op_threads:
        return settings.model.onnx_intra_op_threads
    return default_intra_op_threads(settings.service.batch_workers, cpus_per_process(settings))


# --- serving ---------------------------------------------------------------------------------


def build_server(
    classifier: AnyClassifier, parse_parts: PartParser[Any], settings: ServerSettings[Any]
) -> GrpcServer:
    """A GrpcServer exposing `classifier` (health, reflection, error mapping, drain);
    stopping it closes the classifier and its model."""
    draining = asyncio.Event()
    return GrpcServer(
        settings.grpc,
        [
            registration(
                classifier,
                parse_parts,
                settings.grpc.stream_max_in_flight,
                draining,
                settings.service.batch_call_max_items,
            )
        ],
        on_drain=[draining.set],
        on_close=[classifier.close],
    )


async def run(
    app: ClassifierApp[Any],
    settings: ServerSettings[Any] | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve `app` in this process until SIGTERM: model, classifier started, server."""
    settings = for_device(settings or app.settings())
    classifier = app.make_classifier(app.build_model(settings), settings)
    await classifier.start()
    server = build_server(classifier, app.parse_parts, settings)
    await serve_forever(server, on_ready)


def serve_process(
    app: ClassifierApp[Any],
    settings: ServerSettings[Any],
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """One serving process: logs, telemetry, run() until SIGTERM. `on_ready(port)`; None
    prints `PORT <n>`."""
    configure_logging(settings.grpc.log_level, service=app.service)
    setup_telemetry(app.service)
    try:
        asyncio.run(run(app, settings, on_ready))
    finally:
        shutdown_telemetry()


# Serves one process until SIGTERM: (settings, on_ready(port) or None to print `PORT <n>`).
ServeOne = Callable[[ServerSettings[Any], Callable[[int], None] | None], None]


def _serve_child(
    port: int,
    on_ready: Callable[[], None],
    settings: Callable[[], ServerSettings[Any]],
    serve_one: ServeOne,
) -> None:
    serve_one(settings().with_port(port), lambda _port: on_ready())


def serve_processes(
    count: int,
    serve_one: ServeOne,
    settings: Callable[[], ServerSettings[Any]],
    name: str,
) -> int:
    """Serve from `count` processes sharing one port (crossguard.core.server_processes): each
    runs `serve_one` (picklable) with `settings()` read from the environment, bound to the
    supervisor's port. Returns the supervisor's exit status."""
    base = settings()
    return serve_in_processes(
        count,
        functools.partial(_serve_child, settings=settings, serve_one=serve_one),
        host=base.grpc.host,
        port=base.grpc.port,
        grace_seconds=base.grpc.grace_seconds,
        name=name,
    )


def main(app: ClassifierApp[Any]) -> None:
    """The service's process entry: serve `app` from server_processes() processes."""
    if app.prepare_process is not None:
        app.prepare_process()
    settings = app.settings()
    configure_logging(settings.grpc.log_level, service=app.service)
    processes = server_processes(settings)
    serve_one = functools.partial(serve_process, app)
    if processes > 1:
        raise SystemExit(serve_processes(processes, serve_one, app.settings, app.service))
    serve_one(settings, None)
