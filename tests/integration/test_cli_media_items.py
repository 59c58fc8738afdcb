"""`crossguard moderate --image/--audio` and the demo's items: local files go into the media
store and the items carry references that read_media reads back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crossguard.cli.items import MediaFiles, build_item, load_jsonl
from crossguard.core.media import MediaSettings, MediaTooLarge, read_media

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "services" / "crossguard" / "cli" / "samples"


def test_files_travel_by_reference(tmp_path: Path) -> None:
    settings = MediaSettings(file_root=tmp_path / "media")
    image, audio = SAMPLES / "holiday.png", SAMPLES / "voice-note.wav"
    item = build_item("c1", ["hi"], [image], [audio], media=MediaFiles(settings))
    parts = {p.part_id: p for p in item.parts}
    for part_id, path, mime in [
        ("image-0", image, "image/png"),
        ("audio-0", audio, "audio/x-wav"),
    ]:
        media = parts[part_id].media
        data = path.read_bytes()
        assert media.WhichOneof("source") == "uri"
        assert media.uri.startswith(settings.root.as_uri())
        assert (media.size, media.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert media.mime_type in (mime, mime.replace("x-", ""))
        assert read_media(media, settings) == data


def test_jsonl_media_by_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = MediaSettings(file_root=tmp_path / "media", max_bytes=10)
    (tmp_path / "a.png").write_bytes(b"0123456789x")
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps({"text": "t", "image": "a.png"}) + "\n")
    with pytest.raises(MediaTooLarge):
        build_item("c2", images=[tmp_path / "a.png"], media=MediaFiles(settings))
    monkeypatch.setenv("CROSSGUARD_MEDIA_FILE_ROOT", str(tmp_path / "media"))
    (labeled,) = list(load_jsonl(path))  # the store from the environment
    assert labeled.item.parts[1].media.uri.startswith((tmp_path / "media").as_uri())
