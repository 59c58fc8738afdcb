"""Model repository layout and manifests: models/<name>/<version>/{model.onnx, manifest.json}.

A manifest declares what a runtime needs to use the model without its source framework:
inputs, outputs, labels and how they map onto the taxonomy, preprocessing, and provenance.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from crossguard.core.errors import ModelError

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


class TensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str
    # None for dynamic dimensions.
    shape: list[int | str | None]


class Provenance(BaseModel):
    model_config = ConfigDict(frozen=True)

    source_package: str
    source_version: str
    licence: str
    # What the weights are, in words (upstream model id, training data, ...).
    description: str = ""
    # Command that reproduces this entry.
    built_by: str = ""


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    task: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] = Field(default_factory=list)
    # label -> taxonomy category name; labels absent here are not harm categories.
    taxonomy: dict[str, str] = Field(default_factory=dict)
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    # file name -> hex sha256 of every file in the entry (model.onnx and side files).
    files: dict[str, str] = Field(default_factory=dict)
    provenance: Provenance
    # Free-form measured facts (parity max abs diff, thresholds, metrics).
    metrics: dict[str, Any] = Field(default_factory=dict)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelEntry:
    """One versioned model directory."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @property
    def onnx_path(self) -> Path:
        return self.path / MODEL_FILE

    def file(self, name: str) -> Path:
        if name not in self.manifest.files:
            raise ModelError(f"{self.path}: manifest lists no file {name!r}")
        return self.path / name

    def verify(self) -> None:
        """Check every file's sha256 against the manifest."""
        for name, expected in self.manifest.files.items():
            p = self.path / name
            if not p.is_file():
                raise ModelError(f"{p}: missing (listed in {MANIFEST_FILE})")
            actual = sha256_file(p)
            if actual != expected:
                raise ModelError(f"{p}: sha256 {actual} does not match manifest {expected}")


class ModelRepository:
    """A directory of models/<name>/<version>/ entries."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def entry_dir(self, name: str, version: str) -> Path:
        return self.root / name / version

    def fresh_entry_dir(self, name: str, version: str) -> Path:
        """The entry's directory, created if needed and emptied of files from an earlier build."""
        path = self.entry_dir(name, version)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.iterdir():
            if stale.is_file():
                stale.unlink()
        return path

    def versions(self, name: str) -> list[str]:
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(
            (p.name for p in base.iterdir() if (p / MANIFEST_FILE).is_file()),
            key=_version_key,
        )

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """Load an entry; the highest version when none is given."""
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise ModelError(
                    f"model {name!r} not found in repository {self.root}; "
                    "run `crossguard models build` first"
                )
            version = versions[-1]
        path = self.entry_dir(name, version)
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ModelError(f"model {name}/{version} not found at {path}")
        try:
            manifest = Manifest.model_validate_json(manifest_path.read_text())
        except ValueError as exc:
            raise ModelError(f"{manifest_path}: invalid manifest: {exc}") from exc
        return ModelEntry(path, manifest)

    def write_manifest(self, path: Path, manifest: Manifest) -> Path:
        """Write a manifest, filling in sha256 for every file in the directory."""
        files = {
            p.name: sha256_file(p)
            for p in sorted(path.iterdir())
            if p.is_file() and p.name != MANIFEST_FILE
        }
        final = manifest.model_copy(update={"files": files})
        out = path / MANIFEST_FILE
        out.write_text(json.dumps(final.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        return out


def _version_key(v: str) -> tuple[int | str, ...]:
    return tuple(int(p) if p.isdigit() else p for p in v.split("."))
