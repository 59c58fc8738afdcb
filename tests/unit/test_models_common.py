"""Build helpers: missing build dependencies are named by their pip package."""

from __future__ import annotations

import pytest

from crossguard.core.errors import ModelError
from crossguard.models import _common
from crossguard.models.build import DEFAULT_MODELS, build_default_repository

pytestmark = pytest.mark.unit


def test_missing_package_error_names_pip_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_common.PIP_REQUIREMENTS, "crossguard_no_such_mod", "no-such-pkg==1.0")
    with pytest.raises(ModelError, match=r"pip install 'no-such-pkg==1.0'"):
        _common.require("crossguard_no_such_mod")


def test_default_models_and_unknown_name(tmp_path: object) -> None:
    assert [(m.name, m.version) for m in DEFAULT_MODELS] == [
        ("minilm-l6-encoder", "3"),
        ("profanity", "1"),
        ("text-heads", "5"),
        ("minilm-l6-encoder-fp16", "3"),
        ("mpnet-base-encoder", "1"),
        ("text-heads-mpnet", "1"),
        ("use-m3-encoder", "1"),
        ("text-heads-multilingual", "1"),
        ("framing-head", "1"),
        ("silero-vad", "1"),
        ("whisper-base", "1"),
        ("whisper-tiny-en", "1"),
        ("open-nsfw", "1"),
        ("pp-ocr", "4"),
        ("nsfwjs-mobilenet-v2", "1"),
    ]
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    with pytest.raises(ModelError, match="unknown default model"):
        build_default_repository(tmp_path, progress=_common.no_progress, only=["nope"])
