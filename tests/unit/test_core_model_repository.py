from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.errors import ModelError
from crossguard.core.model_repository import Manifest, ModelRepository, Provenance, TensorSpec

pytestmark = pytest.mark.unit


def _manifest(version: str) -> Manifest:
    return Manifest(
        name="toy",
        version=version,
        task="text-classification",
        inputs=[TensorSpec(name="x", dtype="float32", shape=[None, 4])],
        outputs=[TensorSpec(name="y", dtype="float32", shape=[None, 2])],
        labels=["a", "b"],
        provenance=Provenance(source_package="test", source_version="0", licence="MIT"),
    )


def _entry(repo: ModelRepository, version: str) -> Path:
    path = repo.entry_dir("toy", version)
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(b"weights " + version.encode())
    repo.write_manifest(path, _manifest(version))
    return path


def test_latest_version_is_numeric_and_sha256_verified(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    for v in ("2", "10", "9"):
        _entry(repo, v)
    entry = repo.get("toy")
    assert entry.manifest.version == "10"
    assert set(entry.manifest.files) == {"model.onnx"}
    entry.verify()


def test_tampered_file_fails_verification(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    path = _entry(repo, "1")
    (path / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="does not match manifest"):
        repo.get("toy").verify()


def test_missing_model_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="crossguard models build"):
        ModelRepository(tmp_path).get("absent")
