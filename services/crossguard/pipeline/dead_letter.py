"""The dead-letter record format, built in one place for every reason an item is dead-lettered
(rejected input, an internal error, outputs the broker refuses).

The record is the original key, bytes and headers, plus the reason (human-readable, at most
1 KiB), the machine-readable error code and the source (topic/partition/offset) as headers.
"""

from __future__ import annotations

from crossguard.pipeline.records import Headers, OutRecord
from crossguard.pipeline.validate import Rejection

DLQ_REASON_HEADER = "crossguard-dlq-reason"
DLQ_ERROR_HEADER = "crossguard-dlq-error"
DLQ_SOURCE_HEADER = "crossguard-dlq-source"
_OWN_HEADERS = (DLQ_REASON_HEADER, DLQ_ERROR_HEADER, DLQ_SOURCE_HEADER)
MAX_REASON_BYTES = 1024


def dead_letter_record(
    raw: bytes | None,
    headers: Headers | None,
    rejection: Rejection,
    *,
    key: bytes | None = None,
    source: str = "",
) -> OutRecord:
    """The original bytes and headers (earlier dead-letter headers replaced), plus the reason,
    error code and source. The key defaults to the content id when the record had none."""
    reason = rejection.reason.encode("utf-8")[:MAX_REASON_BYTES]
    out = [(k, v) for k, v in (headers or []) if k not in _OWN_HEADERS]
    out += [(DLQ_REASON_HEADER, reason), (DLQ_ERROR_HEADER, rejection.code.encode())]
    if source:
        out.append((DLQ_SOURCE_HEADER, source.encode()))
    if key is None and rejection.content_id:
        key = rejection.content_id.encode()
    return OutRecord("dlq", key, raw or b"", out)
