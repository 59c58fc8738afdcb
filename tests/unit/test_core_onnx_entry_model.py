"""The one-session model lifecycle before load and after close (no model files needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossguard.core.errors import NotReady
from crossguard.core.model_repository import ModelRepository
from crossguard.vision.nsfw import OpenNsfwModel
from crossguard.vision.nsfwjs import NsfwjsModel

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cls", [OpenNsfwModel, NsfwjsModel])
def test_unloaded_models_refuse_work_and_name_themselves(cls: type, tmp_path: Path) -> None:
    model = cls(ModelRepository(tmp_path))
    assert not model.ready() and model.model_infos == [(model.name, "unloaded")]
    with pytest.raises(NotReady, match=f"{model.name} is not loaded"):
        model.session()
    model.close()  # closing an unloaded model is harmless
    assert model.version == "unloaded"
