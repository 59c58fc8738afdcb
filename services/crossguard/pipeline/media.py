"""Media in the pipeline beyond validation: a classifier's media error → a DLQ rejection, and
review tasks that carry references, never bytes."""

from __future__ import annotations

import asyncio

from crossguard.core.media import MediaError, MediaStore, media_reason
from crossguard.pipeline.validate import Rejection
from crossguard.v1 import content_pb2


def media_rejection(modality: str, message: str, content_id: str) -> Rejection | None:
    """A classifier's error status message that starts with a media reason code
    (core.media.errors) → the rejection that sends the item to the DLQ with that code."""
    reason = media_reason(message)
    if reason is None:
        return None
    return Rejection(reason, f"{modality} classifier: {message}", content_id)


async def by_reference(item: content_pb2.ContentItem, store: MediaStore) -> content_pb2.ContentItem:
    """`item` itself when it has no inline media, else a copy whose inline media parts are put
    into `store` (off the event loop) and replaced by their references."""
    inline = [
        i
        for i, part in enumerate(item.parts)
        if part.WhichOneof("kind") == "media" and part.media.WhichOneof("source") == "inline_data"
    ]
    if not inline:
        return item
    out = content_pb2.ContentItem()
    out.CopyFrom(item)
    for i in inline:
        media = out.parts[i].media
        try:
            ref = await asyncio.to_thread(store.put, media.inline_data, media.mime_type)
        except MediaError as exc:  # the store failed: DLQ with its reason, replay later
            detail = f"media store for the review task: {exc.detail}"
            raise Rejection(exc.reason, detail, item.id) from exc
        media.CopyFrom(ref)
    return out
