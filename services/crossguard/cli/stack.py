"""The local stack behind `crossguard up` / `demo`: embedded broker (unless a real cluster is
configured), the classifier and consistency services, and the pipeline worker, as local
processes with readiness waits and a clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

from crossguard.core.broker import EMBEDDED_KAFKA_TUNING, EmbeddedBroker
from crossguard.core.processes import ManagedProcess, service_process
from crossguard.core.settings import KafkaSettings, ModelSettings
from crossguard.core.topics import create_topics

STATE_DIR = Path(".crossguard")
STATE_FILE = STATE_DIR / "stack.json"


@dataclass(frozen=True)
class StackInfo:
    """What clients (`moderate`, `replay`) need to reach a running stack."""

    bootstrap: str
    topic_prefix: str
    text_endpoint: str
    consistency_endpoint: str
    supervisor_pid: int
    embedded_broker: bool
    review_url: str = ""
    audio_endpoint: str = ""
    vision_endpoint: str = ""

    def kafka_settings(self) -> KafkaSettings:
        update: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "topic_prefix": self.topic_prefix,
        }
        if self.embedded_broker:
            update.update(EMBEDDED_KAFKA_TUNING)
        return KafkaSettings().model_copy(update=update)


def read_running_stack(state_file: Path = STATE_FILE) -> StackInfo | None:
    """The stack started by `crossguard up`, if its supervisor is still alive."""
    try:
        info = StackInfo(**json.loads(state_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    try:
        os.kill(info.supervisor_pid, 0)
    except OSError:
        return None
    return info


Notify = Callable[[str], None]

REVIEW_DEMO_USER = "demo-lead"
REVIEW_PREFERRED_PORT = 8080


def review_demo_password(state_dir: Path) -> str:
    """The local review store's first-start password, generated once and kept (0600) next to
    the store, so the login printed by `up`/`demo` works on every run."""
    path = state_dir / "review-demo-password"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def review_env(state_dir: Path, bootstrap: str, tuning: dict[str, str]) -> dict[str, str]:
    """The review service on SQLite in the state dir, on port 8080 when free (else any)."""
    port = os.environ.get("CROSSGUARD_REVIEW_PORT")
    if port is None:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", REVIEW_PREFERRED_PORT))
                port = str(REVIEW_PREFERRED_PORT)
            except OSError:
                port = "0"
    return {
        **tuning,
        "CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CROSSGUARD_REVIEW_DATABASE_URL": os.environ.get(
            "CROSSGUARD_REVIEW_DATABASE_URL", f"sqlite:///{state_dir.resolve()}/review.db"
        ),
        "CROSSGUARD_REVIEW_PORT": port,
        "CROSSGUARD_REVIEW_BOOTSTRAP_PASSWORD": review_demo_password(state_dir),
    }


class LocalStack:
    def __init__(
        self,
        *,
        kafka: KafkaSettings | None = None,
        models: ModelSettings | None = None,
        state_dir: Path = STATE_DIR,
        notify: Notify = lambda _msg: None,
        write_state: bool = True,
    ) -> None:
        self.kafka = kafka or KafkaSettings()
        self.models = models or ModelSettings()
        self.state_dir = state_dir
        self.log_dir = state_dir / "logs"
        self.notify = notify
        self.write_state = write_state
        self.broker: EmbeddedBroker | None = None
        self.procs: list[ManagedProcess] = []
        self.info: StackInfo | None = None

    def _service(self, name: str, module: str, extra: dict[str, str]) -> ManagedProcess:
        env = {
            "CROSSGUARD_MODEL_REPOSITORY": str(self.models.model_repository.resolve()),
            "OTEL_SERVICE_NAME": f"crossguard-{name}",
            **extra,
        }
        return service_process(name, module, env, log_dir=self.log_dir)

    def start(self) -> StackInfo:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        bootstrap = self.kafka.bootstrap_servers
        if not bootstrap:
            self.notify("starting embedded Kafka-compatible broker (tansu)")
            self.broker = EmbeddedBroker(log_path=self.log_dir / "broker.log")
            bootstrap = self.broker.start()
        self.notify(f"broker at {bootstrap}; creating topics")
        asyncio.run(create_topics(self.kafka, bootstrap))

        text = self._service("text", "crossguard.text", {})
        self.notify("starting text classifier service")
        self.procs.append(text)
        text.start(ready="PORT")
        # `PORT` is printed only once health is SERVING (models loaded): no extra wait needed.
        text_ep = f"127.0.0.1:{text.port}"
        # The consistency service has the text service score an item's texts read together.
        consistency = self._service(
            "consistency",
            "crossguard.consistency",
            {"CROSSGUARD_CONSISTENCY_TEXT_ENDPOINT": text_ep},
        )
        self.notify("starting consistency service")
        self.procs.append(consistency)
        consistency.start(ready="PORT")
        # Whisper and the text models it scores transcripts with load in its own process.
        audio = self._service("audio", "crossguard.audio", {})
        self.notify("starting audio classifier service")
        self.procs.append(audio)
        audio.start(ready="PORT")
        audio_ep = f"127.0.0.1:{audio.port}"
        consistency_ep = f"127.0.0.1:{consistency.port}"
        # Vision scores the text it reads in images through the text service.
        vision = self._service(
            "vision", "crossguard.vision", {"CROSSGUARD_VISION_TEXT_ENDPOINT": text_ep}
        )
        self.notify("starting vision classifier service")
        self.procs.append(vision)
        vision.start(ready="PORT")
        vision_ep = f"127.0.0.1:{vision.port}"

        self.notify("starting pipeline worker")
        tuning = (
            {f"CROSSGUARD_KAFKA_{k.upper()}": str(v) for k, v in EMBEDDED_KAFKA_TUNING.items()}
            if self.broker is not None
            else {}
        )
        worker = self._service(
            "worker",
            "crossguard.pipeline",
            {
                **tuning,
                "CROSSGUARD_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "CROSSGUARD_TEXT_ENDPOINT": text_ep,
                "CROSSGUARD_AUDIO_ENDPOINT": audio_ep,
                "CROSSGUARD_VISION_ENDPOINT": vision_ep,
                "CROSSGUARD_CONSISTENCY_ENDPOINT": consistency_ep,
            },
        )
        self.procs.append(worker)
        worker.start(ready="READY")

        self.notify("starting review service (SQLite store)")
        review = self._service(
            "review", "crossguard.review", review_env(self.state_dir, bootstrap, tuning)
        )
        self.procs.append(review)
        review.start(ready="PORT")
        self.info = StackInfo(
            bootstrap=bootstrap,
            topic_prefix=self.kafka.topic_prefix,
            text_endpoint=text_ep,
            consistency_endpoint=consistency_ep,
            supervisor_pid=os.getpid(),
            embedded_broker=self.broker is not None,
            review_url=f"http://localhost:{review.port}",
            audio_endpoint=audio_ep,
            vision_endpoint=vision_ep,
        )
        if self.write_state:
            (self.state_dir / "stack.json").write_text(json.dumps(asdict(self.info)))
        self.notify(f"stack up (logs in {self.log_dir})")
        return self.info

    def check(self) -> list[str]:
        """Names of child processes that have died."""
        dead = [p.name for p in self.procs if not p.alive()]
        if self.broker is not None and not self.broker.running:
            dead.append("broker")
        return dead

    def stop(self) -> None:
        # Worker first (stops consuming), then services (drain), then the broker.
        for proc in reversed(self.procs):
            proc.stop()
        self.procs = []
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if self.write_state:
            with contextlib.suppress(OSError):
                (self.state_dir / "stack.json").unlink()

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_or_temporary_stack(notify: Notify) -> Iterator[StackInfo]:
    """Use the stack from `crossguard up` when one is running, else start a temporary one."""
    info = read_running_stack()
    if info is not None:
        yield info
        return
    notify("no running stack (start one with `crossguard up`); starting a temporary one")
    with LocalStack(notify=notify, write_state=False) as stack:
        assert stack.info is not None
        yield stack.info
