"""Integration fixtures: a real tansu broker (one per session), a fresh topic set per test
(via topic_prefix), and factories for service processes on random ports.

Processes are started with `python -m ...`, their stdout lines are collected by a thread so a
test can wait for `PORT <n>` / `READY`, and everything started is killed at teardown.
"""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from crossguard.core.broker import EmbeddedBroker
from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import create_topics

SERVICE_STARTUP_S = 120.0
WORKER_STARTUP_S = 60.0


@dataclass
class Proc:
    """A child process whose stdout lines are collected in the background."""

    name: str
    popen: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    port: int = 0

    def start_reader(self) -> None:
        def pump() -> None:
            assert self.popen.stdout is not None
            for line in self.popen.stdout:
                self.lines.put(line.strip())

        threading.Thread(target=pump, daemon=True, name=f"stdout-{self.name}").start()

    def wait_line(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.popen.poll() is not None:
                    raise AssertionError(
                        f"{self.name} exited with {self.popen.returncode} before {prefix!r}"
                    ) from None
                continue
            # faust may prefix terminal control sequences on the same line
            if prefix in line:
                return line[line.index(prefix) :]
        raise AssertionError(f"{self.name} did not print {prefix!r} within {timeout}s")

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.popen.kill()
        self.popen.wait(10)


class ProcFactory(Protocol):
    def __call__(self, name: str, module: str, env: dict[str, str]) -> Proc: ...


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[ProcFactory]:
    """Start `python -m module` with extra env; stderr goes to tmp_path/<name>.log."""
    procs: list[Proc] = []

    def start(name: str, module: str, env: dict[str, str]) -> Proc:
        log = open(tmp_path / f"{name}.log", "a")  # noqa: SIM115 - closed with the process
        popen = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        log.close()
        proc = Proc(name, popen)
        proc.start_reader()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()


@pytest.fixture(scope="session")
def tansu() -> Iterator[EmbeddedBroker]:
    """One real tansu broker for the whole session (topics are per test)."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def kafka(tansu: EmbeddedBroker) -> KafkaSettings:
    """Test Kafka settings: a fresh topic prefix (so fresh topics and consumer group), 6 s
    session timeout and tiny producer batches (tansu's faults), topics created up front."""
    settings = KafkaSettings(
        bootstrap_servers=tansu.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        session_timeout_ms=6000,
        producer_max_batch_size=64,
    )
    asyncio.run(create_topics(settings, tansu.bootstrap))
    return settings


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    return {
        "CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CROSSGUARD_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "CROSSGUARD_KAFKA_PARTITIONS": str(kafka.partitions),
        "CROSSGUARD_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "CROSSGUARD_KAFKA_PRODUCER_MAX_BATCH_SIZE": str(kafka.producer_max_batch_size),
    }


class ServiceFactory(Protocol):
    def __call__(self, **env: str) -> Proc: ...


def start_grpc_service(spawn: ProcFactory, name: str, module: str, env: dict[str, str]) -> Proc:
    """`python -m module` on a random loopback port, quiet, with a short drain; `.port` set."""
    proc = spawn(
        name,
        module,
        {
            "CROSSGUARD_PORT": "0",
            "CROSSGUARD_HOST": "127.0.0.1",
            "CROSSGUARD_GRACE_SECONDS": "1",
            "CROSSGUARD_LOG_LEVEL": "WARNING",
            **env,
        },
    )
    proc.port = int(proc.wait_line("PORT ", SERVICE_STARTUP_S).split()[1])
    return proc


@pytest.fixture
def start_text(spawn: ProcFactory, request: pytest.FixtureRequest) -> ServiceFactory:
    """`python -m crossguard.text` on a random port (evidence off by default for speed)."""

    def start(**env: str) -> Proc:
        repo = request.getfixturevalue("model_repository")
        text_env = {
            "CROSSGUARD_MODEL_REPOSITORY": str(repo.root),
            "CROSSGUARD_ONNX_PROVIDERS": "CPUExecutionProvider",
            "CROSSGUARD_ONNX_INTRA_OP_THREADS": "1",
            "CROSSGUARD_TEXT_EVIDENCE_PASSES": "0",
        }
        return start_grpc_service(spawn, "text", "crossguard.text", {**text_env, **env})

    return start


@pytest.fixture
def start_consistency(spawn: ProcFactory) -> ServiceFactory:
    def start(**env: str) -> Proc:
        return start_grpc_service(spawn, "consistency", "crossguard.consistency", env)

    return start


class WorkerFactory(Protocol):
    def __call__(self, *, wait_ready: bool = True, **env: str) -> Proc: ...


@pytest.fixture
def start_worker(spawn: ProcFactory, kafka: KafkaSettings) -> WorkerFactory:
    """`python -m crossguard.pipeline` against the test broker and topics; waits for READY
    (joined the consumer group) unless told not to."""

    def start(*, wait_ready: bool = True, **env: str) -> Proc:
        proc = spawn(
            "worker",
            "crossguard.pipeline",
            {
                **kafka_env(kafka),
                "CROSSGUARD_LOG_LEVEL": "WARNING",
                "CROSSGUARD_AGENT_CONCURRENCY": "8",
                **env,
            },
        )
        if wait_ready:
            proc.wait_line("READY", WORKER_STARTUP_S)
        return proc

    return start
