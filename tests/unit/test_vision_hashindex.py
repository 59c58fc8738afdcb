"""The hash index (crossguard.vision.hashindex) against a brute-force scan: same nearest entry
and distance for every query, within the threshold and not beyond, for PDQ and pHash, across
incremental adds and several banks. Small banks: exactness, not speed (`crossguard bench
hashes` measures speed)."""

from __future__ import annotations

import numpy as np
import pytest

from crossguard.vision.hashindex import KindIndex, flip_masks
from crossguard.vision.hashing import BITS, HashKind

pytestmark = pytest.mark.unit


def flipped(row: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of a packed row with exactly `bits` distinct bits flipped."""
    out = row.copy()
    for bit in rng.choice(len(row) * 8, bits, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def brute_force(
    bank: np.ndarray, queries: np.ndarray, threshold: int
) -> list[tuple[int, int] | None]:
    """(position, distance) of each query's nearest row within the threshold (ties: the first
    row), or None, by comparing with every row."""
    words = bank.shape[1] // 8
    b = bank.view(np.uint64).reshape(-1, words)
    q = queries.view(np.uint64).reshape(-1, words)
    distances = np.bitwise_count(q[:, None, :] ^ b[None, :, :]).sum(axis=-1)
    out: list[tuple[int, int] | None] = []
    for row in distances:
        best = int(row.min())
        out.append((int(np.argmax(row == best)), best) if best <= threshold else None)
    return out


def bank_and_queries(
    kind: HashKind, threshold: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random rows plus a cluster sharing their first chunks (real banks are not uniform);
    queries: copies at exactly threshold - 1, threshold and threshold + 1 bits, copies at
    random distances up to threshold + 8, exact copies, and random rows."""
    width = BITS[kind] // 8
    bank = rng.integers(0, 256, (size, width), dtype=np.uint8)
    bank[: size // 10, : width // 2] = bank[0, : width // 2]  # one crowded bucket per chunk
    picks = rng.choice(size, 120, replace=False)
    exact = [
        flipped(bank[p], d, rng)
        for p in picks[:20]
        for d in (threshold - 1, threshold, threshold + 1)
    ]
    spread = [
        flipped(bank[p], int(d), rng)
        for p, d in zip(picks[60:], rng.integers(0, threshold + 9, 60), strict=True)
    ]
    copies = [bank[p].copy() for p in picks[:10]]
    noise = list(rng.integers(0, 256, (20, width), dtype=np.uint8))
    return bank, np.stack(exact + spread + copies + noise)


def assert_matches_brute_force(index: KindIndex, bank: np.ndarray, queries: np.ndarray) -> None:
    expected = brute_force(bank, queries, index.threshold)
    for q, (hit, want) in enumerate(zip(index.search(queries), expected, strict=True)):
        got = None if hit is None else (hit.row_id, hit.distance)
        assert got == want, f"query {q}"
        assert hit is None or hit.query == q


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [
        (HashKind.PDQ, 31),  # the default: 1 flip per 16-bit chunk
        (HashKind.PDQ, 15),  # 0 flips
        (HashKind.PDQ, 40),  # 2 flips
        (HashKind.PHASH, 6),  # the default: 4 chunks, 1 flip
        (HashKind.PHASH, 3),  # 0 flips
    ],
)
def test_search_equals_brute_force_within_the_threshold(kind: HashKind, threshold: int) -> None:
    rng = np.random.default_rng(threshold)
    bank, queries = bank_and_queries(kind, threshold, 3000, rng)
    index = KindIndex(kind, threshold)
    index.add(bank, np.arange(len(bank)), ["b"] * len(bank))
    assert len(index) == len(bank)
    assert_matches_brute_force(index, bank, queries)
    hits = [h for h in index.search(queries) if h is not None]
    distances = {h.distance for h in hits}
    assert threshold in distances and threshold + 1 not in distances  # the edge was exercised


def test_incremental_adds_several_banks_and_ties() -> None:
    rng = np.random.default_rng(7)
    bank, queries = bank_and_queries(HashKind.PDQ, 31, 2000, rng)
    bank[1500] = bank[10]  # a duplicate added later: ties go to the row added first
    index = KindIndex(HashKind.PDQ, 31)
    index.add(bank[:1000], np.arange(1000), ["first"] * 1000)
    assert_matches_brute_force(index, bank[:1000], queries)  # searched between adds
    names = ["second" if i % 2 else "third" for i in range(1000)]
    index.add(bank[1000:], np.arange(1000, 2000), names)
    assert len(index) == 2000
    assert_matches_brute_force(index, bank, queries)
    assert index.banks == ["first", "third", "second"]  # in order of appearance
    for hit in index.search(queries):
        if hit is not None:
            row = hit.row_id
            assert hit.bank == ("first" if row < 1000 else "second" if row % 2 else "third")
    tie = index.search(bank[10:11])[0]
    assert tie is not None and tie.row_id == 10 and tie.distance == 0


def test_row_ids_are_the_stores_not_positions() -> None:
    rng = np.random.default_rng(3)
    bank = rng.integers(0, 256, (50, 32), dtype=np.uint8)
    index = KindIndex(HashKind.PDQ, 31)
    index.add(bank, np.arange(50) * 10 + 5, ["b"] * 50)
    hit = index.search(flipped(bank[7], 31, rng)[None])[0]
    assert hit is not None and hit.row_id == 75 and hit.distance == 31
    beyond = flipped(bank[7], 32, rng)[None]
    assert brute_force(bank, beyond, 31) == [None] and index.search(beyond) == [None]


def test_empty_index_and_empty_queries() -> None:
    index = KindIndex(HashKind.PDQ, 31)
    queries = np.random.default_rng(0).integers(0, 256, (3, 32), dtype=np.uint8)
    assert len(index) == 0 and index.search(queries) == [None, None, None]
    assert index.nearest(queries) is None
    index.add(np.zeros((0, 32), dtype=np.uint8), np.zeros(0, dtype=np.int64), [])
    assert len(index) == 0 and index.banks == []
    index.add(queries[:1], np.array([9]), ["b"])
    assert index.search(np.zeros((0, 32), dtype=np.uint8)) == []


def test_nearest_over_an_images_variants() -> None:
    rng = np.random.default_rng(5)
    bank = rng.integers(0, 256, (500, 32), dtype=np.uint8)
    index = KindIndex(HashKind.PDQ, 31)
    index.add(bank, np.arange(500), ["b"] * 500)
    variants = rng.integers(0, 256, (8, 32), dtype=np.uint8)  # no match...
    variants[2] = flipped(bank[40], 30, rng)
    variants[5] = flipped(bank[41], 12, rng)  # ...but two variants match, this one closer
    hit = index.nearest(variants)
    assert hit is not None and (hit.row_id, hit.distance, hit.query) == (41, 12, 5)


def test_flip_masks_are_every_probe_within_the_flips() -> None:
    assert flip_masks(0).tolist() == [0]
    assert len(flip_masks(1)) == 17 and len(flip_masks(2)) == 1 + 16 + 120


def test_concurrent_searches_after_an_add_see_the_same_tables() -> None:
    """The vision service looks hashes up from 2 threads: the first searches after an add build
    the tables once, and every thread gets the brute-force answer."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    bank, queries = bank_and_queries(HashKind.PDQ, 31, 2000, rng)
    index = KindIndex(HashKind.PDQ, 31)
    index.add(bank, np.arange(len(bank)), ["b"] * len(bank))
    expected = brute_force(bank, queries, 31)
    batches = [queries[i : i + 8] for i in range(0, len(queries), 8)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(index.search, batches))
    got = [None if h is None else (h.row_id, h.distance) for hits in results for h in hits]
    assert got == expected
