from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from crossguard.core.errors import ModelError
from crossguard.core.onnx_session import (
    CPU,
    CUDA,
    choose_providers,
    create_session,
    cuda_device_visible,
    library_load_error,
)

pytestmark = pytest.mark.unit

TENSORRT = "TensorrtExecutionProvider"


def test_auto_prefers_cuda_when_available_visible_and_loadable() -> None:
    assert choose_providers("auto", [CUDA, CPU], gpu_visible=True, cuda_loads=True) == [CUDA, CPU]
    trt = ["TensorrtExecutionProvider", CUDA, CPU]
    assert choose_providers("AUTO", trt, gpu_visible=True, cuda_loads=True) == [CUDA, CPU]


def test_auto_falls_back_to_cpu() -> None:
    assert choose_providers("auto", [CPU], gpu_visible=True, cuda_loads=True) == [CPU]
    # onnxruntime-gpu on a machine without a GPU still lists CUDA.
    assert choose_providers("auto", [CUDA, CPU], gpu_visible=False, cuda_loads=True) == [CPU]
    # A GPU, but the provider cannot start (no CUDA 13 / cuDNN 9 libraries, driver too old).
    assert choose_providers("auto", [CUDA, CPU], gpu_visible=True, cuda_loads=False) == [CPU]


def test_library_load_error_is_the_loaders_message(tmp_path: Path) -> None:
    assert "does not exist" in (library_load_error(tmp_path / "libmissing.so") or "")
    not_a_library = tmp_path / "libfake.so"
    not_a_library.write_bytes(b"not an ELF file")
    assert "libfake.so" in (library_load_error(not_a_library) or "")
    assert library_load_error(_resolved("libm.so.6")) is None


def _resolved(soname: str) -> Path:
    """The file behind a soname on this machine (from the running process's own mappings)."""
    ctypes.CDLL(soname)
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(soname) or f"/{soname}" in line:
            return Path(line.split()[-1])
    raise AssertionError(f"{soname} not mapped")


# onnxruntime without a working provider falls back to CPU by itself: the CPU build warns
# that the provider is not available, the GPU build (no GPU here) prints its load error.
_ORT_FALLBACK = "ignore:Specified provider"


@pytest.mark.filterwarnings(_ORT_FALLBACK)
@pytest.mark.parametrize("requested", [CUDA, f"{CUDA},{CPU}", TENSORRT])
def test_an_explicit_provider_that_does_not_start_is_an_error(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, requested: str
) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    with pytest.raises(ModelError, match="could not start it"):
        create_session(model_path, providers=requested)


@pytest.mark.filterwarnings(_ORT_FALLBACK)
def test_auto_cuda_that_does_not_start_runs_on_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime as ort

    from crossguard.core import onnx_session

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnx_session, "cuda_device_visible", lambda: True)
    monkeypatch.setattr(onnx_session, "cuda_provider_error", lambda: None)
    session = create_session(model_path, providers="auto")
    assert session.get_providers() == [CPU]
    assert "could not start the CUDA provider" in caplog.text


def test_the_cuda_probe_names_the_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossguard.core import onnx_session

    # The provider library of this onnxruntime build is absent (CPU build) or cannot load
    # (GPU build without CUDA libraries); either way the reason is the loader's.
    onnx_session.cuda_provider_error.cache_clear()
    try:
        error = onnx_session.cuda_provider_error()
    finally:
        onnx_session.cuda_provider_error.cache_clear()
    if error is None:
        pytest.skip("onnxruntime's CUDA provider and its libraries load on this machine")
    assert "libonnxruntime_providers_cuda.so" in error or "libcu" in error


def test_a_soname_is_looked_up_on_the_loaders_path() -> None:
    assert "libcrossguard-none.so.1" in (library_load_error("libcrossguard-none.so.1") or "")
    assert library_load_error("libm.so.6") is None


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """A one-node ONNX graph (Identity), written with the onnx package."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "identity.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, path)
    return path


def test_hidden_gpus_are_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert not cuda_device_visible()


def test_explicit_list_keeps_cpu_fallback_and_rejects_missing() -> None:
    assert choose_providers(CUDA, [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(ModelError, match="install onnxruntime-gpu"):
        choose_providers(CUDA, [CPU])


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="crossguard models build"):
        create_session(tmp_path / "nope.onnx")


@pytest.mark.filterwarnings(_ORT_FALLBACK)
def test_session_from_settings_takes_providers_and_threads_from_settings(
    monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    import onnxruntime as ort

    from crossguard.core.onnx_session import session_from_settings
    from crossguard.core.settings import ModelSettings

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    settings = ModelSettings(onnx_providers=CUDA, onnx_intra_op_threads=2)
    with pytest.raises(ModelError, match="could not start it"):
        session_from_settings(model_path, settings)  # CUDA as the settings ask
    session = session_from_settings(model_path, settings, cpu=True, intra_op_threads=1)
    assert session.get_providers() == [CPU]
    assert session.get_session_options().intra_op_num_threads == 1
    default = session_from_settings(model_path, ModelSettings(onnx_intra_op_threads=2))
    assert default.get_session_options().intra_op_num_threads == 2
