"""Loading policies from YAML: validation with readable errors, and hot reload on change."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from crossguard.core.errors import InvalidInput
from crossguard.policy.model import Policy

log = logging.getLogger(__name__)

DEFAULT_POLICY_RESOURCE = "default_policy.yaml"
# libyaml when present: the policy simulator and hot reload parse whole files.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class PolicyIssue:
    """One problem in a policy file: where (file, line, dotted field path) and what."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.message}"


class PolicyError(InvalidInput):
    """A policy file is unreadable or invalid. `issues` names file, line and field of each
    problem; `errors` are the same as "file:line: field: message" strings."""

    def __init__(self, source: str, issues: list[PolicyIssue]) -> None:
        self.source = source
        self.issues = issues
        self.errors = [str(i) for i in issues]
        super().__init__(f"invalid policy {source}:\n  " + "\n  ".join(self.errors))


Path_ = tuple[str | int, ...]


def _loc(loc: Sequence[int | str | object]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif parts:
            parts.append(f".{p}")
        else:
            parts.append(str(p))
    return "".join(parts) or "<root>"


def _lines(node: yaml.Node, source: str) -> dict[Path_, int]:
    """Line (1-based) of every mapping key and sequence item, by its path. Duplicate keys
    (which YAML loaders silently collapse) are errors."""
    out: dict[Path_, int] = {(): node.start_mark.line + 1}
    dupes: list[PolicyIssue] = []

    def walk(n: yaml.Node, path: Path_) -> None:
        if isinstance(n, yaml.MappingNode):
            seen: set[str] = set()
            for k, v in n.value:
                key = (str(k.value),) if isinstance(k, yaml.ScalarNode) else ("?",)
                if key[0] in seen and isinstance(k, yaml.ScalarNode):
                    dupes.append(
                        PolicyIssue(
                            source, k.start_mark.line + 1, _loc(path + key), "duplicate key"
                        )
                    )
                seen.add(key[0])
                out[path + key] = k.start_mark.line + 1
                walk(v, path + key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                out[(*path, i)] = v.start_mark.line + 1
                walk(v, (*path, i))

    walk(node, ())
    if dupes:
        raise PolicyError(source, dupes)
    return out


def _line_of(lines: dict[Path_, int], loc: Sequence[int | str | object]) -> int | None:
    """The line of the deepest part of `loc` the file has (a missing field: its parent)."""
    path: list[str | int] = [p if isinstance(p, int) else str(p) for p in loc]
    while True:
        line = lines.get(tuple(path))
        if line is not None:
            return line
        if not path:
            return None
        path.pop()


def parse_policy(text: str, source: str = "<string>") -> Policy:
    """Parse and validate policy YAML. Raises PolicyError naming each problem's file, line and
    field path."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise PolicyError(
            source, [PolicyIssue(source, line, "<yaml>", f"YAML syntax: {exc.problem}")]
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [PolicyIssue(source, None, "<yaml>", f"YAML: {exc}")]) from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict):
        line = node.start_mark.line + 1 if node is not None else 1
        raise PolicyError(
            source,
            [PolicyIssue(source, line, "<root>", "expected a mapping with at least `version`")],
        )
    lines = _lines(node, source)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        issues = []
        for e in exc.errors():
            loc, msg = tuple(e["loc"]), e["msg"]
            if loc and loc[-1] == "[key]":  # a mapping key that is not allowed
                loc = loc[:-1]
                msg = f"unknown key {loc[-1]!r}: {msg}"
            issues.append(PolicyIssue(source, _line_of(lines, loc), _loc(loc), msg))
        raise PolicyError(source, issues) from None


def read_policy_text(path: Path | str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        issue = PolicyIssue(str(path), None, "<file>", f"cannot read: {reason or exc}")
        raise PolicyError(str(path), [issue]) from None


def load_policy(path: Path | str) -> Policy:
    return parse_policy(read_policy_text(path), str(path))


def default_policy_text() -> str:
    return resources.files("crossguard.policy").joinpath(DEFAULT_POLICY_RESOURCE).read_text()


def default_policy() -> Policy:
    return parse_policy(default_policy_text(), f"crossguard.policy/{DEFAULT_POLICY_RESOURCE}")


class PolicyStore:
    """The current policy, reloaded when the file's mtime (or size) changes.

    `current()` checks the file at most every `check_interval` seconds. An invalid new file
    is logged and ignored: the previous policy stays in force until a valid file appears. So
    is a file whose rules changed but whose `version` did not: every decision names the version
    it was decided under, so one version must always mean one set of rules. The swap is a
    single reference assignment: a caller that took `current()` decides the whole item under
    that policy, and no item waits for or misses a reload.
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
            self._text = default_policy_text()
        else:
            self._stamp = self._file_stamp()
            self._text = read_policy_text(self.path)
            self._policy = parse_policy(self._text, str(self.path))  # invalid: fail loudly
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
                text = read_policy_text(self.path)
                if text == self._text:
                    return False
                policy = parse_policy(text, str(self.path))
                if policy.version == self._policy.version:
                    issue = PolicyIssue(
                        str(self.path),
                        None,
                        "version",
                        f"the rules changed but version is still {policy.version!r}: "
                        "bump it (decisions name the version they were decided under)",
                    )
                    raise PolicyError(str(self.path), [issue])
            except PolicyError as exc:
                self.last_error = exc
                log.error(
                    "policy reload failed; keeping previous policy",
                    extra={"policy_version": self._policy.version, "errors": exc.errors},
                )
                return False
            old, self._policy, self._text = self._policy, policy, text
            self.last_error = None
            log.info(
                "policy reloaded",
                extra={"policy_version": policy.version, "previous_version": old.version},
            )
            return True
