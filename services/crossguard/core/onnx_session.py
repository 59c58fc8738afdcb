"""ONNX Runtime session factory: CUDA execution provider when present, else CPU."""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from crossguard.core.errors import ModelError

if TYPE_CHECKING:
    import onnxruntime as ort

    from crossguard.core.settings import ModelSettings

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def cuda_device_visible() -> bool:
    """Whether this process can see an NVIDIA GPU: onnxruntime-gpu offers its CUDA provider
    whether or not there is one (the GPU image on a CPU node), and the NVIDIA device plugin
    mounts /dev/nvidia<N> into a pod that was given one."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "unset").strip() in ("", "-1"):
        return False
    return any(Path("/dev").glob("nvidia[0-9]*"))


# Loaded by onnxruntime's CUDA provider when it first runs a model, not when it loads.
_CUDNN = "libcudnn.so.9"


def library_load_error(library: Path | str) -> str | None:
    """Why a shared library (a path, or a soname found on the loader's path) cannot be loaded
    here (the loader's own message, e.g. a CUDA library it needs that is missing), or None
    when it loads."""
    if isinstance(library, Path) and not library.is_file():
        return f"{library} does not exist"
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return str(exc)
    return None


@functools.cache
def cuda_provider_error() -> str | None:
    """Why onnxruntime's CUDA provider cannot start in this process, or None when its library
    (with the CUDA runtime, cuBLAS and driver libraries it links) and cuDNN load. onnxruntime-gpu
    lists CUDA among its providers whatever is installed, and when the provider fails to start
    it falls back to CPU with only a line on stderr; loading the libraries as onnxruntime will
    tells it beforehand (Linux; elsewhere None). A driver too old for the CUDA runtime still
    loads and shows only when a session starts (create_session). Logged as a warning, once per
    process."""
    if not sys.platform.startswith("linux"):
        return None
    import onnxruntime as ort

    lib = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    error = library_load_error(lib) or library_load_error(_CUDNN)
    if error is not None:
        log.warning(
            "a GPU is visible but onnxruntime's CUDA provider cannot start; using the CPU "
            "(onnxruntime-gpu 1.31 needs CUDA 13 and cuDNN 9 libraries on the library path)",
            extra={"error": error},
        )
    return error


def choose_providers(
    requested: str,
    available: list[str],
    gpu_visible: bool | None = None,
    cuda_loads: bool | None = None,
) -> list[str]:
    """Resolve a CROSSGUARD_ONNX_PROVIDERS value against what onnxruntime offers.

    'auto' prefers CUDA when onnxruntime offers it, a GPU is visible (`gpu_visible`, None:
    cuda_device_visible()) and its provider can start (`cuda_loads`, None: no
    cuda_provider_error()); TensorRT is opt-in (its engine builds are slow and need tuning).
    The list always ends with CPU, the fallback for unsupported nodes.
    """
    if requested.strip().lower() == "auto":
        use_cuda = (
            CUDA in available
            and (cuda_device_visible() if gpu_visible is None else gpu_visible)
            and (cuda_provider_error() is None if cuda_loads is None else cuda_loads)
        )
        return [CUDA, CPU] if use_cuda else [CPU]
    wanted = [p.strip() for p in requested.split(",") if p.strip()]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise ModelError(
            f"onnxruntime providers {missing} are not available here (available: {available}); "
            "install onnxruntime-gpu for CUDA"
        )
    if CPU not in wanted:
        wanted.append(CPU)
    return wanted


def create_session(
    path: Path,
    providers: str = "auto",
    intra_op_threads: int = 0,
    cuda_device_id: int = 0,
    allow_spinning: bool | None = None,
) -> ort.InferenceSession:
    """`allow_spinning`: whether intra-op threads spin-wait for work (onnxruntime's
    `session.intra_op.allow_spinning`); None keeps onnxruntime's default (spinning on)."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ModelError(f"ONNX model not found: {path}; run `crossguard models build`")
    chosen = choose_providers(providers, ort.get_available_providers())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    if allow_spinning is not None:
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
    provider_args: list[str | tuple[str, dict[str, object]]] = [
        (p, {"device_id": cuda_device_id}) if p == CUDA else p for p in chosen
    ]
    session = ort.InferenceSession(str(path), sess_options=options, providers=provider_args)
    active = session.get_providers()
    lost = [p for p in chosen if p != CPU and p not in active]
    if lost:
        # onnxruntime fell back to CPU on its own (it only says so on stderr).
        if providers.strip().lower() != "auto":
            raise ModelError(
                f"{lost} requested (CROSSGUARD_ONNX_PROVIDERS={providers}) but onnxruntime "
                f"could not start it and would run {Path(path).name} on {active}; check the "
                "GPU, its driver and the CUDA 13 / cuDNN 9 libraries (onnxruntime's message is "
                "above), or set CROSSGUARD_ONNX_PROVIDERS=auto to fall back to the CPU"
            )
        log.warning(
            "onnxruntime could not start the CUDA provider; this session runs on the CPU",
            extra={"model_path": str(path), "providers": active},
        )
    log.info("onnx session ready", extra={"model_path": str(path), "providers": active})
    return session


def session_from_settings(
    path: Path,
    settings: ModelSettings,
    *,
    cpu: bool = False,
    intra_op_threads: int | None = None,
    allow_spinning: bool | None = None,
) -> ort.InferenceSession:
    """create_session as ModelSettings configure it (providers, intra-op threads, CUDA device).
    `cpu`: on the CPU provider whatever CROSSGUARD_ONNX_PROVIDERS says; `intra_op_threads`
    overrides the setting."""
    return create_session(
        path,
        providers=CPU if cpu else settings.onnx_providers,
        intra_op_threads=(
            settings.onnx_intra_op_threads if intra_op_threads is None else intra_op_threads
        ),
        cuda_device_id=settings.cuda_device_id,
        allow_spinning=allow_spinning,
    )
