from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.errors import ModelError
from crossguard.core.onnx_session import CPU, CUDA, choose_providers, create_session

pytestmark = pytest.mark.unit


def test_auto_prefers_cuda_when_available() -> None:
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("AUTO", ["TensorrtExecutionProvider", CUDA, CPU]) == [CUDA, CPU]


def test_auto_falls_back_to_cpu() -> None:
    assert choose_providers("auto", [CPU]) == [CPU]


def test_explicit_list_keeps_cpu_fallback_and_rejects_missing() -> None:
    assert choose_providers(CUDA, [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(ModelError, match="install onnxruntime-gpu"):
        choose_providers(CUDA, [CPU])


def test_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="crossguard models build"):
        create_session(tmp_path / "nope.onnx")
