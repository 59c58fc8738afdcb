"""`crossguard bench hashes`: PDQ lookups per second and index memory at several bank sizes.

The bank holds uniformly random 256-bit hashes (real PDQ hashes are less uniform, which puts more
entries in some buckets); half of the queries are copies of bank entries with 24 bits flipped
(must match, distance 24 <= 31), half random (must not). Lookups go through the service's own
index (crossguard.vision.hashindex.KindIndex: faiss IndexBinaryMultiHash, exact within the
threshold) in batches of 8, one image's flip/rotate variants as the service sends them.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Sequence

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


def measure(size: int, queries: int, threshold: int = 31, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, (size, 32), dtype=np.uint8)
    gc.collect()
    before = _rss_bytes()
    index = KindIndex(HashKind.PDQ, threshold)
    t0 = time.perf_counter()
    index.add(bank, np.arange(size, dtype=np.int64), ["bench"] * size)
    build = time.perf_counter() - t0
    memory = _rss_bytes() - before - bank.nbytes
    q, near = _queries(bank, queries, rng)
    hits = 0
    t0 = time.perf_counter()
    for start in range(0, len(q), QUERY_BATCH):
        hits += sum(h is not None for h in index.search(q[start : start + QUERY_BATCH]))
    seconds = time.perf_counter() - t0
    return {
        "size": size,
        "build_s": build,
        "lookups_per_s": len(q) / seconds,
        "memory_mb": max(0, memory) / 2**20,
        "recall": hits / near if near else 1.0,
        "false_hits": max(0, hits - near),
    }


def run_bench_hashes(sizes: Sequence[int], queries: int) -> int:
    console = Console()
    table = Table(
        "hashes",
        "build s",
        "lookups/s",
        "index memory MB",
        "recall (d=24)",
        "hits on random",
        title=f"PDQ lookups, faiss IndexBinaryMultiHash (16×16 bits, 1 flip), threshold 31, "
        f"batches of {QUERY_BATCH}, {os.cpu_count()} CPUs",
    )
    for size in sizes:
        r = measure(size, queries)
        table.add_row(
            f"{size:,}",
            f"{r['build_s']:.1f}",
            f"{r['lookups_per_s']:,.0f}",
            f"{r['memory_mb']:.0f}",
            f"{r['recall']:.3f}",
            str(int(r["false_hits"])),
        )
        console.print(table) if size == sizes[-1] else None
    return 0
