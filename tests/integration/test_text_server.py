"""`python -m crossguard.text` as a real process on a random port: PORT line, health, Classify,
bad inputs, SIGTERM drain."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crossguard.core.model_repository import ModelRepository
from crossguard.text.servicer import SERVICE_NAME
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc, content_pb2

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


ServerFactory = Callable[..., tuple[subprocess.Popen[str], int]]


@pytest.fixture
def start_server(model_repository: ModelRepository) -> Iterator[ServerFactory]:
    procs: list[subprocess.Popen[str]] = []

    def start(**env_overrides: str) -> tuple[subprocess.Popen[str], int]:
        env = {
            **os.environ,
            "CROSSGUARD_PORT": "0",
            "CROSSGUARD_HOST": "127.0.0.1",
            "CROSSGUARD_MODEL_REPOSITORY": str(model_repository.root),
            "CROSSGUARD_ONNX_PROVIDERS": "CPUExecutionProvider",
            "CROSSGUARD_GRACE_SECONDS": "5",
            **env_overrides,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "crossguard.text"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        return proc, read_port(proc, STARTUP_SECONDS)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_real_server_classifies_and_drains_on_sigterm(start_server: ServerFactory) -> None:
    proc, port = start_server(CROSSGUARD_TEXT_MAX_PART_CHARS="5000")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
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

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
