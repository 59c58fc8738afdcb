"""Child service processes (local stack, bench, tests): start, wait for the ready line, stop.

service_process() is the one way to start a Crossguard service as a child: it fills in the
listen address, drain time and log level (CROSSGUARD_HOST/PORT/GRACE_SECONDS/LOG_LEVEL) that
every service reads, around a ManagedProcess.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ProcessError(RuntimeError):
    pass


def terminate(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM (graceful drain), then SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()


class ManagedProcess:
    """A `python -m <module>` child whose stderr (JSON logs) goes to a log file.

    Servers print `PORT <n>` on stdout once serving, the worker prints `READY` once it has
    joined its consumer group; `start(ready="PORT")` waits for such a line.
    """

    def __init__(
        self, name: str, module: str, env: Mapping[str, str], log_dir: Path | None = None
    ) -> None:
        self.name = name
        self.module = module
        self.env = dict(env)
        # No log_dir: the child's stderr is discarded (benchmarks).
        self.log_path = log_dir / f"{name}.log" if log_dir is not None else Path(os.devnull)
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        """The child's pid while started (for /proc readings such as its CPU time)."""
        if self._proc is None:
            raise ProcessError(f"{self.name} is not started")
        return self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, *, ready: str, timeout: float = 180.0) -> None:
        if self.log_path != Path(os.devnull):
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("a")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children.
        )
        log.close()
        found = threading.Event()

        def read() -> None:
            # Keeps draining stdout after the ready line so the child never blocks on a pipe.
            assert self._proc is not None and self._proc.stdout is not None
            for line in self._proc.stdout:
                # faust may prefix terminal control sequences; match on the visible text.
                line = _ANSI.sub("", line)
                if line.startswith(ready) and not found.is_set():
                    if ready == "PORT":
                        self.port = int(line.split()[1])
                    found.set()

        threading.Thread(target=read, name=f"{self.name}-stdout", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if not self.alive():
                status = self._proc.returncode if self._proc is not None else None
                raise ProcessError(
                    f"{self.name} exited at startup with status {status}; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise ProcessError(
                    f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}"
                )

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful drain), then SIGKILL after `timeout` seconds; the exit status (0
        after a clean drain), or None if it was not started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        terminate(proc, timeout)
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL now, no drain (a crash, or a teardown with nothing to keep); the exit
        status, or None if it was not started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        proc.kill()  # a no-op once it has exited
        return proc.wait()


def service_env(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    grace_seconds: float | None = None,
    log_level: str | None = None,
) -> dict[str, str]:
    """The environment every service reads for where to listen (port 0: a free port, printed
    as `PORT <n>`), how long to drain on SIGTERM and how much to log (None: the service's
    default)."""
    env = {"CROSSGUARD_HOST": host, "CROSSGUARD_PORT": str(port)}
    if grace_seconds is not None:
        env["CROSSGUARD_GRACE_SECONDS"] = f"{grace_seconds:g}"
    if log_level is not None:
        env["CROSSGUARD_LOG_LEVEL"] = log_level
    return env


def service_process(
    name: str,
    module: str,
    env: Mapping[str, str] | None = None,
    *,
    log_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    grace_seconds: float | None = None,
    log_level: str | None = None,
) -> ManagedProcess:
    """`python -m module` as a ManagedProcess (not started) with service_env() plus `env`
    (which wins). Start a gRPC service with `.start(ready="PORT")` and read `.port`."""
    full = service_env(host=host, port=port, grace_seconds=grace_seconds, log_level=log_level)
    full.update(env or {})
    return ManagedProcess(name, module, full, log_dir)
