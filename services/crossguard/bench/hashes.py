"""`crossguard bench hashes`: PDQ lookups per second and index memory at several bank sizes.

The bank holds uniformly random 256-bit hashes (real PDQ hashes are less uniform, which puts more
entries in some buckets); half of the queries are copies of bank entries with 24 bits flipped
(must match, distance 24 <= 31), half random (must not). Lookups go through the service's own
index (crossguard.vision.hashindex.KindIndex, exact within the threshold) in batches of 8, one
image's flip/rotate variants as the service sends them. A lookup is one hash: images/s is
lookups/s / 8. Measured on 1 thread and on 2 (the vision service looks hashes up in a pool of 2);
the machine's load average is printed with each size, since other work on it slows both.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from rich.console import Console
from rich.table import Table

from crossguard.vision.hashindex import KindIndex
from crossguard.vision.hashing import HashKind

QUERY_BATCH = 8
FLIPPED_BITS = 24


def _rss_bytes() -> int:
    """Resident memory of this process now (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _queries(bank: np.ndarray, count: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    near = count // 2
    picks = rng.choice(len(bank), near, replace=False)
    queries = bank[picks].copy()
    for row in queries:
        for bit in rng.choice(256, FLIPPED_BITS, replace=False):
            row[bit // 8] ^= 1 << (bit % 8)
    misses = rng.integers(0, 256, (count - near, 32), dtype=np.uint8)
    return np.concatenate([queries, misses]), near


def _lookups(
    index: KindIndex, queries: np.ndarray, threads: int
) -> tuple[np.ndarray, float, float]:
    """(found per query, wall seconds, CPU seconds of the process) for every query, in batches
    of 8 spread over `threads` threads."""
    starts = list(range(0, len(queries), QUERY_BATCH))
    found = np.zeros(len(queries), dtype=bool)

    def run(part: list[int]) -> None:
        for i in part:
            hits = index.search(queries[i : i + QUERY_BATCH])
            found[i : i + len(hits)] = [h is not None for h in hits]

    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [starts[t::threads] for t in range(threads)]))
    return found, time.perf_counter() - t0, time.process_time() - c0


def measure(size: int, queries: int, threshold: int = 31, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    load = os.getloadavg()[0]
    gc.collect()
    before = _rss_bytes()
    index = KindIndex(HashKind.PDQ, threshold)
    t0 = time.perf_counter()
    index.add(bank, np.arange(size, dtype=np.int64), ["bench"] * size)
    index.build()
    build = time.perf_counter() - t0
    gc.collect()
    rss = _rss_bytes() - before - bank.nbytes
    q, near = _queries(bank, queries, rng)
    found, wall1, cpu1 = _lookups(index, q, 1)
    found2, wall2, cpu2 = _lookups(index, q, 2)
    if not np.array_equal(found, found2):
        raise AssertionError("2 threads found other hits than 1 thread")
    return {
        "size": size,
        "build_s": build,
        "lookups_1": len(q) / wall1,
        "lookups_2": len(q) / wall2,
        "lookups_per_cpu_s": 2 * len(q) / (cpu1 + cpu2),
        "index_mb": index.nbytes / 2**20,
        "rss_mb": max(0, rss) / 2**20,
        "recall": float(found[:near].mean()) if near else 1.0,
        "false_hits": int(found[near:].sum()),
        "load": max(load, os.getloadavg()[0]),
    }


def run_bench_hashes(sizes: Sequence[int], queries: int) -> int:
    console = Console()
    table = Table(
        "hashes",
        "build s",
        "index MB",
        "RSS MB",
        "lookups/s 1 thread",
        "lookups/s 2 threads",
        "images/s 2 threads",
        "lookups/CPU-s",
        "recall",
        "random hits",
        "load",
        title=f"PDQ lookups (1 lookup = 1 hash, batches of {QUERY_BATCH} = 1 image), exact "
        f"multi-index hashing (16×16 bits, 1 flip), threshold 31, {os.cpu_count()} CPUs",
    )
    for size in sizes:
        r = measure(size, queries)
        table.add_row(
            f"{size:,}",
            f"{r['build_s']:.1f}",
            f"{r['index_mb']:.0f}",
            f"{r['rss_mb']:.0f}",
            f"{r['lookups_1']:,.0f}",
            f"{r['lookups_2']:,.0f}",
            f"{r['lookups_2'] / QUERY_BATCH:,.0f}",
            f"{r['lookups_per_cpu_s']:,.0f}",
            f"{r['recall']:.3f}",
            str(int(r["false_hits"])),
            f"{r['load']:.1f}",
        )
    console.print(table)
    return 0
