from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.settings_doc import env_name, render, settings_classes

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_names_its_environment_variable() -> None:
    undocumented = [
        f"{cls.__qualname__}.{name}"
        for cls in settings_classes()
        for name, info in cls.model_fields.items()
        if not (info.description or "").startswith(env_name(cls, name))
    ]
    assert not undocumented, f"Field description must start with its env var: {undocumented}"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: "
        "python -m crossguard.core.settings_doc > docs/configuration.md"
    )
