"""ManagedProcess with real children: ready line and port, pid, graceful stop, kill, a child
that dies at startup. The child server is the bench's constant-model text server (no model to
load, so it starts in a second or two)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from crossguard.core.processes import ManagedProcess, ProcessError

pytestmark = pytest.mark.integration

SERVER_ENV = {
    "CROSSGUARD_HOST": "127.0.0.1",
    "CROSSGUARD_PORT": "0",
    "CROSSGUARD_GRACE_SECONDS": "1",
}


def test_ready_port_pid_and_graceful_stop(tmp_path: Path) -> None:
    proc = ManagedProcess("constant", "crossguard.bench.grpc_cost", SERVER_ENV, log_dir=tmp_path)
    proc.start(ready="PORT", timeout=60)
    try:
        assert proc.alive() and proc.port > 0
        assert "crossguard.bench.grpc_cost" in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        proc.stop(timeout=10)
    assert not proc.alive()
    with pytest.raises(ProcessError, match="not started"):
        _ = proc.pid
    assert (tmp_path / "constant.log").exists()


def test_kill_returns_the_signal_and_is_idempotent(tmp_path: Path) -> None:
    proc = ManagedProcess("constant", "crossguard.bench.grpc_cost", SERVER_ENV, log_dir=tmp_path)
    proc.start(ready="PORT", timeout=60)
    assert proc.kill() == -signal.SIGKILL
    assert proc.kill() is None
    assert not proc.alive()


def test_child_dying_at_startup_names_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess("missing", "crossguard.no_such_module", {}, log_dir=tmp_path)
    with pytest.raises(ProcessError, match=r"exited at startup; see .*missing\.log"):
        proc.start(ready="PORT", timeout=30)
    assert "No module named" in (tmp_path / "missing.log").read_text()
