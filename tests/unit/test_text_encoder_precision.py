"""Which encoder graph a TextModel serves: int8 on CPU, fp32 on CUDA, explicit choices, and
entries without variants (made by `crossguard models export`, or before minilm-l6-encoder/3)."""

from __future__ import annotations

import pytest

from crossguard.core.errors import ModelError
from crossguard.core.onnx_session import CPU, CUDA, choose_providers
from crossguard.text.model import PRECISIONS, TextModel, encoder_variant, resolve_precision
from crossguard.text.settings import TextServiceSettings

pytestmark = pytest.mark.unit

VARIANTS = {"variants": {"fp32": "model.onnx", "int8": "model.int8.onnx"}}
ENTRY = "minilm-l6-encoder/3"


def test_auto_is_int8_on_cpu_and_fp32_on_cuda() -> None:
    assert resolve_precision("auto", choose_providers("auto", [CPU], gpu_visible=True)) == "int8"
    on_gpu = choose_providers("auto", [CUDA, CPU], gpu_visible=True, cuda_loads=True)
    assert resolve_precision("auto", on_gpu) == "fp32"
    # Explicit CPU on a GPU build: int8 (the providers actually used decide, not the hardware).
    assert resolve_precision("auto", choose_providers(CPU, [CUDA, CPU])) == "int8"
    assert encoder_variant(ENTRY, VARIANTS, "auto", [CPU]) == ("int8", "model.int8.onnx")
    assert encoder_variant(ENTRY, VARIANTS, "auto", [CUDA, CPU]) == ("fp32", "model.onnx")


def test_explicit_precision_wins_over_providers() -> None:
    for providers in ([CPU], [CUDA, CPU]):
        assert resolve_precision("fp32", providers) == "fp32"
        assert resolve_precision("int8", providers) == "int8"
        assert encoder_variant(ENTRY, VARIANTS, "fp32", providers) == ("fp32", "model.onnx")
        assert encoder_variant(ENTRY, VARIANTS, "int8", providers) == ("int8", "model.int8.onnx")


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ModelError, match="not one of"):
        resolve_precision("bf16", [CPU])
    with pytest.raises(ModelError, match="not one of"):
        encoder_variant(ENTRY, {}, "bf16", [CPU])
    with pytest.raises(ModelError, match="not one of"):
        TextModel(precision="bf16")
    # fp16 is an entry of its own (minilm-l6-encoder-fp16), never a variant of the fp32 one.
    with pytest.raises(ModelError, match="its own entry"):
        encoder_variant(ENTRY, {}, "fp16", [CPU])


def test_entry_without_variants_serves_model_onnx_and_refuses_int8() -> None:
    for pre in ({}, {"tokenizer": "tokenizer.json"}):
        assert encoder_variant("mine/1", pre, "auto", [CPU]) == ("fp32", "model.onnx")
        assert encoder_variant("mine/1", pre, "auto", [CUDA, CPU]) == ("fp32", "model.onnx")
        assert encoder_variant("mine/1", pre, "fp32", [CPU]) == ("fp32", "model.onnx")
        with pytest.raises(ModelError, match=r"mine/1 has no int8 variant.*models build"):
            encoder_variant("mine/1", pre, "int8", [CPU])


def test_entry_missing_the_wanted_variant() -> None:
    only_fp32 = {"variants": {"fp32": "model.onnx"}}
    assert encoder_variant(ENTRY, only_fp32, "auto", [CPU]) == ("fp32", "model.onnx")
    with pytest.raises(ModelError, match="has no int8 variant"):
        encoder_variant(ENTRY, only_fp32, "int8", [CPU])
    with pytest.raises(ModelError, match="has no fp32 variant"):
        encoder_variant(ENTRY, {"variants": {"int8": "model.int8.onnx"}}, "auto", [CUDA, CPU])


def test_setting_default_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TextServiceSettings().encoder_precision == "auto"
    monkeypatch.setenv("CROSSGUARD_TEXT_ENCODER_PRECISION", "int8")
    assert TextServiceSettings().encoder_precision == "int8"
    monkeypatch.setenv("CROSSGUARD_TEXT_ENCODER_PRECISION", "fp16")
    assert TextServiceSettings().encoder_precision == "fp16"
    monkeypatch.setenv("CROSSGUARD_TEXT_ENCODER_PRECISION", "bf16")
    with pytest.raises(ValueError, match="encoder_precision"):
        TextServiceSettings()
    field = TextServiceSettings.model_fields["encoder_precision"]
    assert set(PRECISIONS) == {"auto", "fp32", "int8", "fp16"}
    assert field.description and field.description.startswith("CROSSGUARD_TEXT_ENCODER_PRECISION")


def test_server_passes_the_setting_to_the_model() -> None:
    from crossguard.text.server import build_model
    from crossguard.text.settings import TextServerSettings

    for precision in ("fp32", "int8", "auto"):
        text = TextServiceSettings.model_validate({"encoder_precision": precision})
        settings = TextServerSettings(text=text)
        model = build_model(settings)
        assert isinstance(model, TextModel) and model.precision == precision
