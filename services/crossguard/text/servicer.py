"""The text service's part parser: a ClassifyRequest's parts → (part_id, text) pairs.

The servicer itself is the template's (crossguard.core.serving.servicer.ClassifierServicer).
"""

from __future__ import annotations

from crossguard.core.errors import InvalidInput
from crossguard.core.serving.servicer import part_id
from crossguard.v1 import classifier_pb2


def request_parts(request: classifier_pb2.ClassifyRequest) -> list[tuple[str, str]]:
    """(part_id, text) pairs of a request; part ids default to the part's index."""
    parts: list[tuple[str, str]] = []
    for index, part in enumerate(request.parts):
        kind = part.WhichOneof("kind")
        pid = part_id(part, index)
        if kind == "text":
            parts.append((pid, part.text))
        elif kind == "media":
            raise InvalidInput(
                f"part {pid!r} is media ({part.media.mime_type or 'unknown type'}); the text "
                "service takes text parts only: send media to the vision or audio service"
            )
        else:
            raise InvalidInput(f"part {pid!r} has neither text nor media")
    return parts


async def parse_parts(request: classifier_pb2.ClassifyRequest) -> list[tuple[str, str]]:
    """The PartParser of the text service (cheap: no work off the event loop needed)."""
    return request_parts(request)
