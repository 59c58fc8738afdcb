"""Loading policies from YAML: validation with readable errors, and hot reload on change."""

from __future__ import annotations

import logging
import os
import threading
import time
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from crossguard.core.errors import InvalidInput
from crossguard.policy.model import Policy

log = logging.getLogger(__name__)

DEFAULT_POLICY_RESOURCE = "default_policy.yaml"


class PolicyError(InvalidInput):
    """A policy file is unreadable or invalid. `errors` lists "path.to.field: message"."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"invalid policy {source}: " + "; ".join(errors))


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif parts:
            parts.append(f".{p}")
        else:
            parts.append(str(p))
    return "".join(parts) or "<root>"


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate policy YAML. Raises PolicyError naming each bad field's path."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"YAML syntax: {exc}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, ["<root>: expected a mapping with at least `version`"])
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = [f"{_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise PolicyError(source, errors) from None


def load_policy(path: Path | str) -> Policy:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(str(path), [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_policy(text, str(path))


def default_policy_text() -> str:
    return resources.files("crossguard.policy").joinpath(DEFAULT_POLICY_RESOURCE).read_text()


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), f"crossguard.policy/{DEFAULT_POLICY_RESOURCE}")


class PolicyStore:
    """The current policy, reloaded when the file's mtime (or size) changes.

    `current()` checks the file at most every `check_interval` seconds. An invalid new file
    is logged and ignored: the previous policy stays in force until a valid file appears.
    With no path, the packaged default policy is used and never reloaded.
    """

    def __init__(self, path: Path | str | None = None, *, check_interval: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.check_interval = check_interval
        self.last_error: PolicyError | None = None
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        if self.path is None:
            self._policy = default_policy()
        else:
            self._stamp = self._file_stamp()
            self._policy = load_policy(self.path)  # invalid at startup: fail loudly
        self._next_check = time.monotonic() + check_interval
        log.info("policy loaded", extra={"policy_version": self._policy.version})

    def _file_stamp(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Policy:
        if self.path is not None and time.monotonic() >= self._next_check:
            self.maybe_reload()
        return self._policy

    def maybe_reload(self) -> bool:
        """Reload if the file changed; returns True when a new policy took effect."""
        if self.path is None:
            return False
        with self._lock:
            self._next_check = time.monotonic() + self.check_interval
            stamp = self._file_stamp()
            if stamp is None or stamp == self._stamp:
                return False
            self._stamp = stamp
            try:
                policy = load_policy(self.path)
            except PolicyError as exc:
                self.last_error = exc
                log.error(
                    "policy reload failed; keeping previous policy",
                    extra={"policy_version": self._policy.version, "errors": exc.errors},
                )
                return False
            old, self._policy = self._policy, policy
            self.last_error = None
            log.info(
                "policy reloaded",
                extra={"policy_version": policy.version, "previous_version": old.version},
            )
            return True
