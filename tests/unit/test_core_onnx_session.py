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


def test_explicit_cuda_that_does_not_start_is_an_error(
    monkeypatch: pytest.MonkeyPatch, model_path: Path
) -> None:
    import onnxruntime as ort

    # onnxruntime without a working CUDA provider falls back to CPU by itself; asked for
    # explicitly, that must not go unnoticed.
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    with (
        pytest.raises(ModelError, match="could not start it"),
        pytest.warns(UserWarning, match="not in available provider"),  # onnxruntime's own
    ):
        create_session(model_path, providers=CUDA)


def test_auto_cuda_that_does_not_start_runs_on_cpu_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, model_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import onnxruntime as ort

    from crossguard.core import onnx_session

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnx_session, "cuda_device_visible", lambda: True)
    monkeypatch.setattr(onnx_session, "cuda_provider_error", lambda: None)
    with pytest.warns(UserWarning, match="not in available provider"):
        session = create_session(model_path, providers="auto")
    assert session.get_providers() == [CPU]
    assert "could not start the CUDA provider" in caplog.text


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
