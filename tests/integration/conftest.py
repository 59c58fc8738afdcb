"""Integration fixtures: a real tansu broker (one per session), a fresh topic set per test
(via topic_prefix), and factories for service processes on random ports.

Processes are the product's own `ManagedProcess` (as `crossguard up` runs them): started with
`python -m ...`, waited on for `PORT <n>` / `READY`, and killed at teardown.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from crossguard.core.broker import EmbeddedBroker
from crossguard.core.processes import ManagedProcess, service_env
from crossguard.core.settings import KafkaSettings
from crossguard.core.topics import create_topics

SERVICE_STARTUP_S = 120.0
WORKER_STARTUP_S = 60.0


class SpawnFactory(Protocol):
    def __call__(
        self, name: str, module: str, env: dict[str, str], *, ready: str, timeout: float
    ) -> ManagedProcess: ...


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[SpawnFactory]:
    """Start `python -m module` with extra env (service_env() for a service) and wait for its
    `ready` line; stderr goes to tmp_path/<name>.log."""
    procs: list[ManagedProcess] = []

    def start(
        name: str, module: str, env: dict[str, str], *, ready: str, timeout: float
    ) -> ManagedProcess:
        proc = ManagedProcess(name, module, env, log_dir=tmp_path)
        procs.append(proc)  # before start: a failed start is cleaned up too
        proc.start(ready=ready, timeout=timeout)
        return proc

    yield start
    for proc in procs:
        proc.kill()  # no drain: nothing to keep, and teardown stays fast


@pytest.fixture(scope="session")
def tansu() -> Iterator[EmbeddedBroker]:
    """One real tansu broker for the whole session (topics are per test)."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def kafka(tansu: EmbeddedBroker) -> KafkaSettings:
    """Test Kafka settings: a fresh topic prefix (so fresh topics and consumer group), 6 s
    session timeout, tiny producer batches and short fetch waits (tansu's faults), topics created
    up front."""
    settings = KafkaSettings(
        bootstrap_servers=tansu.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        session_timeout_ms=6000,
        producer_max_batch_size=64,
        consumer_fetch_max_wait_ms=20,
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
        "CROSSGUARD_KAFKA_CONSUMER_FETCH_MAX_WAIT_MS": str(kafka.consumer_fetch_max_wait_ms),
    }


class ServiceFactory(Protocol):
    def __call__(self, **env: str) -> ManagedProcess: ...


def start_grpc_service(
    spawn: SpawnFactory, name: str, module: str, env: dict[str, str]
) -> ManagedProcess:
    """`python -m module` on a random loopback port, quiet, with a short drain; `.port` set."""
    full = {**service_env(grace_seconds=1, log_level="WARNING"), **env}
    return spawn(name, module, full, ready="PORT", timeout=SERVICE_STARTUP_S)


class GrpcServiceFactory(Protocol):
    def __call__(self, name: str, module: str, **env: str) -> ManagedProcess: ...


@pytest.fixture
def start_grpc(spawn: SpawnFactory) -> GrpcServiceFactory:
    """Any gRPC service module on a random port (start_grpc_service), killed at teardown."""

    def start(name: str, module: str, **env: str) -> ManagedProcess:
        return start_grpc_service(spawn, name, module, env)

    return start


@pytest.fixture
def start_text(spawn: SpawnFactory, request: pytest.FixtureRequest) -> ServiceFactory:
    """`python -m crossguard.text` on a random port (evidence off by default for speed)."""

    def start(**env: str) -> ManagedProcess:
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
def start_consistency(spawn: SpawnFactory, request: pytest.FixtureRequest) -> ServiceFactory:
    """`python -m crossguard.consistency` on a random port (its sentence encoder from the test
    model repository)."""

    def start(**env: str) -> ManagedProcess:
        repo = request.getfixturevalue("model_repository")
        model_env = {
            "CROSSGUARD_MODEL_REPOSITORY": str(repo.root),
            "CROSSGUARD_ONNX_PROVIDERS": "CPUExecutionProvider",
            "CROSSGUARD_ONNX_INTRA_OP_THREADS": "1",
        }
        return start_grpc_service(
            spawn, "consistency", "crossguard.consistency", {**model_env, **env}
        )

    return start


@pytest.fixture
def start_worker(spawn: SpawnFactory, kafka: KafkaSettings, tmp_path: Path) -> ServiceFactory:
    """`python -m crossguard.pipeline` against the test broker and topics, once READY (joined
    the consumer group); its media store (review tasks' media) in tmp_path/media."""

    def start(**env: str) -> ManagedProcess:
        return spawn(
            "worker",
            "crossguard.pipeline",
            {
                **kafka_env(kafka),
                "CROSSGUARD_LOG_LEVEL": "WARNING",
                "CROSSGUARD_AGENT_CONCURRENCY": "8",
                "CROSSGUARD_MEDIA_FILE_ROOT": str(tmp_path / "media"),
                **env,
            },
            ready="READY",
            timeout=WORKER_STARTUP_S,
        )

    return start


S3_SERVER_PYTHON = Path(__file__).resolve().parents[2] / "tools" / "s3server" / ".venv" / "bin"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (moto's server mode, in the virtualenv scripts/setup.sh
    makes in tools/s3server/.venv) on a free loopback port, for the session: its endpoint URL.
    Tests use fresh buckets."""
    python = S3_SERVER_PYTHON / "python"
    if not python.exists():
        raise RuntimeError(f"{python} is missing: run scripts/setup.sh (S3 test server)")
    log = (tmp_path_factory.mktemp("s3server") / "moto.log").open("w")
    proc = subprocess.Popen(
        [str(python), str(S3_SERVER_PYTHON.parents[1] / "serve.py")],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # `PORT <n>` once listening; "" if it died
        if not line.startswith("PORT "):
            raise RuntimeError(f"S3 test server did not start (log: {log.name})")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# -- PostgreSQL (review store) ----------------------------------------------------------------

POSTGRES_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _ensure_postgres() -> None:
    """Start the machine's PostgreSQL cluster if it is down (CI starts it this way)."""
    import glob

    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES_ADMIN_URL, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            return
    except sqlalchemy.exc.OperationalError:
        versions = sorted(p.rsplit("/", 1)[-1] for p in glob.glob("/etc/postgresql/*"))
        if not versions:
            raise
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=True,
        )
    finally:
        engine.dispose()


class DatabaseFactory(Protocol):
    def __call__(self) -> str: ...


@pytest.fixture
def postgres_database() -> Iterator[DatabaseFactory]:
    """Factory of fresh, empty PostgreSQL databases (SQLAlchemy URLs), dropped at teardown."""
    import sqlalchemy

    _ensure_postgres()
    admin = sqlalchemy.create_engine(
        POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool
    )
    made: list[str] = []

    def make() -> str:
        name = f"crossguard_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    with admin.connect() as conn:
        for name in made:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


# --- a tiny randomly initialised CLIP (no CLIP weights install offline) ---------------------

_CLIP_WORDS = [
    "a", "photo", "of", "the", "everyday", "life", "food", "landscape", "screenshot",
    "document", "chart", "or", "diagram", "an", "animal", "sexually", "explicit", "naked",
    "person", "pornography", "bloody", "wound", "dead", "body", "graphic", "violence", "with",
    "blood", "and", "gore", "people", "fighting", "threatening", "someone", "weapon",
    "self-harm", "cuts", "on", "arm", "gun", "firearms", "ammunition", "illegal", "drugs", "drug",
    "paraphernalia", "extremist", "propaganda", "terrorist", "flag", "hate", "symbol", "cat",
    "drawing", "hello", "world,", "this", "is", "longer", "prompt",
]  # fmt: skip


def _tiny_clip(path: Path) -> Path:
    """A randomly initialised CLIP with a word-level tokenizer, saved as a HF checkpoint."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {"<pad>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate(_CLIP_WORDS)}}
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<bos>": bos, "<eos>": eos})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", bos), ("<eos>", eos)]
    )
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 24,
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": 0,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=16,
    )
    model = transformers.CLIPModel(config).eval()
    model.save_pretrained(str(path))
    tok.save(str(path / "tokenizer.json"))
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "CLIPImageProcessor",
                "do_resize": True,
                "size": {"shortest_edge": 32},
                "do_center_crop": True,
                "crop_size": {"height": 32, "width": 32},
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": True,
                "image_mean": [0.48145466, 0.4578275, 0.40821073],
                "image_std": [0.26862954, 0.26130258, 0.27577711],
                "resample": 3,
            }
        )
    )
    return path


@pytest.fixture(scope="session")
def tiny_clip_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint dir, model repository root) of the tiny CLIP, exported once per session by
    `crossguard models export` as entry tiny-clip/1."""
    from crossguard.models.export import export_checkpoint

    checkpoint = _tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
    root = tmp_path_factory.mktemp("clip-repo")
    export_checkpoint(checkpoint, root, name="tiny-clip", version="1", progress=lambda _: None)
    return checkpoint, root
