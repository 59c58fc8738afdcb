"""Shared fixtures. The model repository is built once per test session (or reused from
CROSSGUARD_TEST_MODEL_REPOSITORY / ./models when already built there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crossguard.core.model_repository import ModelRepository

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """The default text model repository, built from installed packages (idempotent)."""
    from crossguard.models.build import build_default_repository

    root_env = os.environ.get("CROSSGUARD_TEST_MODEL_REPOSITORY")
    root = Path(root_env) if root_env else REPO_ROOT / "models"
    build_default_repository(root)
    return ModelRepository(root)
