"""Loading items for demo / replay / moderate: JSONL lines or command-line parts → ContentItem.
Media files go into the media store (CROSSGUARD_MEDIA_STORE_URI; by default the embedded
file:// store) and travel by reference (docs/media.md)."""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

from crossguard.core.media import MediaSettings, MediaStore, open_store
from crossguard.core.media.store import put_file
from crossguard.core.taxonomy import OPENAI_CODES, Category
from crossguard.v1 import content_pb2


@dataclass(frozen=True)
class LabeledItem:
    item: content_pb2.ContentItem
    # Category → 0/1; absent categories are not annotated (not negatives).
    labels: dict[Category, int] = field(default_factory=dict)


class MediaFiles:
    """Puts local media files into the store (opened on first use) and returns references."""

    def __init__(self, settings: MediaSettings | None = None) -> None:
        self.settings = settings or MediaSettings()
        self._store: MediaStore | None = None

    def part(self, path: Path, part_id: str) -> content_pb2.ContentPart:
        if self._store is None:
            self._store = open_store(self.settings)
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return content_pb2.ContentPart(
            part_id=part_id, media=put_file(self._store, path, mime, self.settings)
        )


def build_item(
    item_id: str,
    texts: Sequence[str] = (),
    images: Sequence[Path] = (),
    audios: Sequence[Path] = (),
    *,
    tenant: str = "default",
    surface: str = "comment",
    media: MediaFiles | None = None,
) -> content_pb2.ContentItem:
    media = media or MediaFiles()
    created = Timestamp()
    created.GetCurrentTime()
    item = content_pb2.ContentItem(id=item_id, tenant=tenant, surface=surface, created_at=created)
    for i, text in enumerate(texts):
        item.parts.append(content_pb2.ContentPart(part_id=f"text-{i}", text=text))
    for i, path in enumerate(images):
        item.parts.append(media.part(path, f"image-{i}"))
    for i, path in enumerate(audios):
        item.parts.append(media.part(path, f"audio-{i}"))
    return item


def _labels(row: dict[str, object]) -> dict[Category, int]:
    labels: dict[Category, int] = {}
    raw = row.get("labels")
    if isinstance(raw, dict):
        for name, value in raw.items():
            labels[Category.parse(str(name))] = int(bool(value))
    for code, category in OPENAI_CODES.items():
        if code in row:
            labels[category] = int(bool(row[code]))
    return labels


def load_jsonl(path: Path, limit: int | None = None) -> Iterator[LabeledItem]:
    """Lines with "text" (or "prompt"), optional "image"/"audio" paths relative to the file,
    optional "id", "tenant", "surface" and labels."""
    media = MediaFiles()
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if limit is not None and lineno > limit:
                return
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON: {exc}") from None
            text = row.get("text", row.get("prompt"))
            images = [path.parent / row["image"]] if row.get("image") else []
            audios = [path.parent / row["audio"]] if row.get("audio") else []
            item_id = str(row.get("id") or f"{path.stem}-{lineno:06d}")
            item = build_item(
                item_id,
                [text] if isinstance(text, str) else [],
                images,
                audios,
                tenant=str(row.get("tenant", "default")),
                surface=str(row.get("surface", "comment")),
                media=media,
            )
            yield LabeledItem(item, _labels(row))


def bundled_samples() -> Path:
    return Path(__file__).parent / "samples" / "demo.jsonl"
