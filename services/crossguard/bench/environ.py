"""Reading settings as a child process would see them under extra environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager


@contextmanager
def overridden_environ(env: Mapping[str, str] | None) -> Iterator[None]:
    """os.environ with `env` on top for the block, restored after (set and unset alike)."""
    env = env or {}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
