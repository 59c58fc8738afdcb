"""A GPU node whose CUDA provider cannot start (e.g. a driver too old for CUDA 13): 'auto'
chose CUDA, onnxruntime fell back to the CPU on its own, and the text model then serves the
int8 encoder a CPU pod would, not fp32 on the CPU. onnxruntime here is the CPU build, so the
GPU is pretended (a visible device, a loadable provider) and onnxruntime's fallback is real."""

from __future__ import annotations

import pytest

from crossguard.core import onnx_session
from crossguard.core.model_repository import ModelRepository
from crossguard.core.onnx_session import CPU, CUDA
from crossguard.core.settings import ModelSettings
from crossguard.text.model import TextModel

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:Specified provider")]


def test_auto_falls_back_to_the_cpu_variant(
    model_repository: ModelRepository,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(onnx_session, "cuda_device_visible", lambda: True)
    monkeypatch.setattr(onnx_session, "cuda_provider_error", lambda: None)
    assert onnx_session.choose_providers("auto", ort.get_available_providers()) == [CUDA, CPU]

    model = TextModel(model_repository, ModelSettings(model_repository=model_repository.root))
    model.load()
    try:
        assert model.encoder_precision == "int8"
        assert "could not start the CUDA provider" in caplog.text
        scores = model.predict(["I will find you and kill you"])[0]
        assert max(scores.values()) > 0.5
    finally:
        model.close()
