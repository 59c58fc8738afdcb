"""ManagedProcess with real children: ready line and port, pid, graceful stop, kill, a child
that dies at startup. The child server is the bench's constant-model text server (no model to
load, so it starts in a second or two)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from crossguard.core.processes import ManagedProcess, ProcessError, service_process

pytestmark = pytest.mark.integration

CONSTANT = "crossguard.bench.grpc_cost"


def constant_server(log_dir: Path) -> ManagedProcess:
    return service_process("constant", CONSTANT, log_dir=log_dir, grace_seconds=1)


def test_ready_port_pid_and_graceful_stop(tmp_path: Path) -> None:
    proc = constant_server(tmp_path)
    proc.start(ready="PORT", timeout=60)
    try:
        assert proc.alive() and proc.port > 0
        assert CONSTANT in Path(f"/proc/{proc.pid}/cmdline").read_text()
    finally:
        status = proc.stop(timeout=10)
    assert status == 0, "drained and exited cleanly on SIGTERM"
    assert proc.stop() is None
    assert not proc.alive()
    with pytest.raises(ProcessError, match="not started"):
        _ = proc.pid
    assert (tmp_path / "constant.log").exists()


def test_kill_returns_the_signal_and_is_idempotent(tmp_path: Path) -> None:
    proc = constant_server(tmp_path)
    proc.start(ready="PORT", timeout=60)
    assert proc.kill() == -signal.SIGKILL
    assert proc.kill() is None
    assert not proc.alive()


def test_child_dying_at_startup_names_its_log(tmp_path: Path) -> None:
    proc = ManagedProcess("missing", "crossguard.no_such_module", {}, log_dir=tmp_path)
    with pytest.raises(ProcessError, match=r"exited at startup with status 1; see .*missing\.log"):
        proc.start(ready="PORT", timeout=30)
    assert "No module named" in (tmp_path / "missing.log").read_text()


def test_service_env_names_the_settings_every_service_reads() -> None:
    proc = service_process(
        "svc", "m", {"CROSSGUARD_PORT": "7000", "X": "1"}, grace_seconds=2.5, log_level="DEBUG"
    )
    assert proc.env == {
        "CROSSGUARD_HOST": "127.0.0.1",
        "CROSSGUARD_PORT": "7000",  # the caller's env wins
        "CROSSGUARD_GRACE_SECONDS": "2.5",
        "CROSSGUARD_LOG_LEVEL": "DEBUG",
        "X": "1",
    }
