"""Settings read from the environment are typed settings, documented in
docs/configuration.md: no CROSSGUARD_* variable is read around them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crossguard.core.broker import tansu_binary
from crossguard.models.data import default_data_dir

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
_READ = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\()\s*["'](CROSSGUARD_\w+)["']""")


def test_every_crossguard_variable_read_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    read = {
        (str(path.relative_to(ROOT)), name)
        for path in (ROOT / "services" / "crossguard").rglob("*.py")
        for name in _READ.findall(path.read_text())
    }
    assert not [r for r in read if f"`{r[1]}`" not in doc], "undocumented variables read"


def test_tansu_binary_and_labeled_data_dir_come_from_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CROSSGUARD_TANSU_BIN", str(tmp_path / "tansu"))
    monkeypatch.setenv("CROSSGUARD_LABELED_DATA_DIR", str(tmp_path / "data"))
    assert tansu_binary() == tmp_path / "tansu"
    assert default_data_dir() == tmp_path / "data"
    # Empty means unset: the defaults, not the working directory.
    monkeypatch.setenv("CROSSGUARD_TANSU_BIN", "")
    monkeypatch.setenv("CROSSGUARD_LABELED_DATA_DIR", "")
    assert tansu_binary() != Path()
    assert default_data_dir().name == "moderation"
