from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.errors import ModelError
from crossguard.core.onnx_session import (
    CPU,
    CUDA,
    choose_providers,
    create_session,
    cuda_device_visible,
)

pytestmark = pytest.mark.unit


def test_auto_prefers_cuda_when_available_and_a_gpu_is_visible() -> None:
    assert choose_providers("auto", [CUDA, CPU], gpu_visible=True) == [CUDA, CPU]
    trt = ["TensorrtExecutionProvider", CUDA, CPU]
    assert choose_providers("AUTO", trt, gpu_visible=True) == [CUDA, CPU]


def test_auto_falls_back_to_cpu() -> None:
    assert choose_providers("auto", [CPU], gpu_visible=True) == [CPU]
    # onnxruntime-gpu on a machine without a GPU still lists CUDA.
    assert choose_providers("auto", [CUDA, CPU], gpu_visible=False) == [CPU]


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
