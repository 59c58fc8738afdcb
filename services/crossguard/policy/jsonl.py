"""Reading JSON Lines files of recorded decisions (policy simulate, sor export)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from crossguard.core.errors import InvalidInput


def nonempty_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) of each non-blank line; callers decode each line themselves so
    bad UTF-8 is one bad line, not a failed file. An unreadable file is InvalidInput."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        for n, raw in enumerate(handle, 1):
            if raw.strip():
                yield n, raw
