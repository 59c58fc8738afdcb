"""`python -m crossguard.text` as a real process on a random port: PORT line, health, Classify,
bad inputs, SIGTERM drain."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossguard.core.model_repository import ModelRepository
from crossguard.core.processes import ManagedProcess, ProcessError, service_env
from crossguard.core.serving.servicer import SERVICE_NAME
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2

from .conftest import SpawnFactory

pytestmark = pytest.mark.integration

STARTUP_SECONDS = 120


def read_port(proc: subprocess.Popen[str], timeout: float) -> int:
    """Wait for the `PORT <n>` line on the child's stdout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("PORT "):
                return int(line.split()[1])
    raise AssertionError("server did not print PORT in time")


ServerFactory = Callable[..., ManagedProcess]


@pytest.fixture
def start_server(model_repository: ModelRepository, spawn: SpawnFactory) -> ServerFactory:
    def start(**env_overrides: str) -> ManagedProcess:
        env = {
            **service_env(grace_seconds=5),
            "CROSSGUARD_MODEL_REPOSITORY": str(model_repository.root),
            "CROSSGUARD_ONNX_PROVIDERS": "CPUExecutionProvider",
            **env_overrides,
        }
        return spawn("text", "crossguard.text", env, ready="PORT", timeout=STARTUP_SECONDS)

    return start


def test_real_server_classifies_and_drains_on_sigterm(start_server: ServerFactory) -> None:
    proc = start_server(CROSSGUARD_TEXT_MAX_PART_CHARS="5000")
    with grpc.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", SERVICE_NAME):
            status = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
            assert status == health_pb2.HealthCheckResponse.SERVING

        stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
        resp = stub.Classify(
            classifier_pb2.ClassifyRequest(
                content_id="c1",
                parts=[content_pb2.ContentPart(part_id="t", text="I will find you and kill you")],
            ),
            timeout=30,
        )
        assert resp.scores and resp.models
        assert any("kill" in e.span.text for e in resp.evidence)

        # Settings come from the environment: the per-part limit is 5000 here.
        with pytest.raises(grpc.RpcError) as err:
            stub.Classify(
                classifier_pb2.ClassifyRequest(
                    content_id="big", parts=[content_pb2.ContentPart(text="a" * 6000)]
                ),
                timeout=30,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "limit is 5000" in (err.value.details() or "")

        with pytest.raises(grpc.RpcError) as err:
            stub.Classify(classifier_pb2.ClassifyRequest(content_id="none"), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert proc.stop(timeout=30) == 0


def children(pid: int) -> list[int]:
    """The server processes a supervisor started (not multiprocessing's resource tracker)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            pids = [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []
    out = []
    for child in pids:
        with open(f"/proc/{child}/cmdline", "rb") as fh:
            if b"spawn_main" in fh.read():
                out.append(child)
    return out


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


def classify_over_connections(port: int, n: int) -> None:
    """One call on each of `n` separate connections (as separate clients would open)."""
    for k in range(n):
        options = [("grpc.use_local_subchannel_pool", 1)]
        with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
            stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
            resp = stub.Classify(
                classifier_pb2.ClassifyRequest(
                    content_id=f"c{k}", parts=[content_pb2.ContentPart(text=f"hello number {k}")]
                ),
                timeout=30,
            )
            assert resp.scores


def serving_pair(start_server: ServerFactory, connections: int) -> tuple[ManagedProcess, list[int]]:
    """A supervisor with 2 server processes that answered `connections` separate clients."""
    proc = start_server(CROSSGUARD_TEXT_PROCESSES="2")
    kids = children(proc.pid)
    assert len(kids) == 2
    classify_over_connections(proc.port, connections)
    return proc, kids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc")
def test_server_processes_share_the_port_and_stop_together(start_server: ServerFactory) -> None:
    proc, kids = serving_pair(start_server, 8)

    assert proc.stop(timeout=30) == 0
    assert all(gone(k) for k in kids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc")
def test_server_processes_die_with_a_killed_supervisor(start_server: ServerFactory) -> None:
    proc, kids = serving_pair(start_server, 2)
    proc.kill()
    deadline = time.monotonic() + 10
    while not all(gone(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(k) for k in kids)


def test_server_processes_fail_together_when_a_model_is_missing(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    with pytest.raises(ProcessError, match="exited at startup with status 1"):
        start_server(CROSSGUARD_TEXT_PROCESSES="2", CROSSGUARD_MODEL_REPOSITORY=str(tmp_path))


@pytest.mark.skipif(
    not (sys.platform.startswith("linux") and shutil.which("unshare") and os.geteuid() == 0),
    reason="needs unshare and root for a pid namespace",
)
def test_server_processes_start_when_the_supervisor_is_pid_1(
    model_repository: ModelRepository,
) -> None:
    """In a container without an init process the supervisor is pid 1; its children must not
    take that for an orphaned start."""
    env = {
        **os.environ,
        **service_env(grace_seconds=2),
        "CROSSGUARD_MODEL_REPOSITORY": str(model_repository.root),
        "CROSSGUARD_TEXT_PROCESSES": "2",
    }
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-m", "crossguard.text"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = read_port(proc, STARTUP_SECONDS)
        classify_over_connections(port, 2)
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as fh:
            (supervisor,) = (int(p) for p in fh.read().split())
        assert len(children(supervisor)) == 2
        os.kill(supervisor, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
