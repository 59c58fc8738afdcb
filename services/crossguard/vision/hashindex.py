"""In-memory index of the banks' hashes: faiss's multi-index hashing for binary codes
(IndexBinaryMultiHash), the structure Meta's Hasher-Matcher-Actioner uses for PDQ.

A hash is cut into `nhash` chunks, each a key into its own hash table. A query probes, in every
table, its own chunk and every chunk within `nflip` bit flips of it, and compares only the
entries it finds there. With nflip = threshold // nhash the search is exact (no false negatives):
two hashes within `threshold` bits differ in at most nflip bits of at least one chunk
(pigeonhole). PDQ: 16 chunks of 16 bits, threshold 31 -> 1 flip. pHash: 8 chunks of 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from crossguard.vision.hashbank import HashBankStore
from crossguard.vision.hashing import BITS, HashKind, to_packed

NHASH: dict[HashKind, int] = {HashKind.PDQ: 16, HashKind.PHASH: 8}


@dataclass(frozen=True)
class IndexHit:
    """The nearest bank entry within the threshold: its bank, store row id, distance, and the
    index of the query hash (which flip/rotate variant) that found it."""

    bank: str
    row_id: int
    distance: int
    query: int


class KindIndex:
    """The hashes of one kind, from every bank."""

    def __init__(self, kind: HashKind, threshold: int) -> None:
        import faiss

        self.kind = kind
        self.threshold = threshold
        bits = BITS[kind]
        nhash = NHASH[kind]
        self._index: Any = faiss.IndexBinaryMultiHash(bits, nhash, bits // nhash)
        self._index.nflip = threshold // nhash
        self._row_ids = np.zeros(0, dtype=np.int64)
        self._bank_of = np.zeros(0, dtype=np.int32)
        self.banks: list[str] = []

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def add(self, packed: np.ndarray, row_ids: np.ndarray, banks: list[str]) -> None:
        """Add packed rows [n, bits/8] with their store row ids and bank names."""
        if len(packed) == 0:
            return
        positions = {b: i for i, b in enumerate(self.banks)}
        codes = np.empty(len(banks), dtype=np.int32)
        for i, bank in enumerate(banks):
            if bank not in positions:
                positions[bank] = len(self.banks)
                self.banks.append(bank)
            codes[i] = positions[bank]
        self._index.add(np.ascontiguousarray(packed, dtype=np.uint8))
        self._row_ids = np.concatenate([self._row_ids, np.asarray(row_ids, dtype=np.int64)])
        self._bank_of = np.concatenate([self._bank_of, codes])

    def search(self, packed: np.ndarray) -> list[IndexHit | None]:
        """For each query row, its nearest entry within the threshold, or None."""
        if len(self) == 0 or len(packed) == 0:
            return [None] * len(packed)
        # faiss's binary range search returns distances strictly below the radius.
        lims, distances, positions = self._index.range_search(
            np.ascontiguousarray(packed, dtype=np.uint8), self.threshold + 1
        )
        hits: list[IndexHit | None] = []
        for q in range(len(packed)):
            start, end = int(lims[q]), int(lims[q + 1])
            if start == end:
                hits.append(None)
                continue
            best = start + int(np.argmin(distances[start:end]))
            pos = int(positions[best])
            hits.append(
                IndexHit(
                    self.banks[int(self._bank_of[pos])],
                    int(self._row_ids[pos]),
                    int(distances[best]),
                    q,
                )
            )
        return hits

    def nearest(self, packed: np.ndarray) -> IndexHit | None:
        """The closest hit over several query rows (an image's variants), or None."""
        found = [h for h in self.search(packed) if h is not None]
        return min(found, key=lambda h: h.distance) if found else None


class BankIndex:
    """Every kind's index, built from a store at one revision."""

    def __init__(self, thresholds: dict[HashKind, int]) -> None:
        self.thresholds = thresholds
        self.kinds = {kind: KindIndex(kind, t) for kind, t in thresholds.items()}
        self.revision = -1

    @classmethod
    def from_store(
        cls, store: HashBankStore, thresholds: dict[HashKind, int], chunk: int = 50_000
    ) -> BankIndex:
        index = cls(thresholds)
        index.revision = store.revision()
        for kind, kind_index in index.kinds.items():
            rows: list[tuple[int, str, str]] = []
            for row in store.iter_kind(kind):
                rows.append(row)
                if len(rows) >= chunk:
                    _add_rows(kind_index, rows)
                    rows = []
            _add_rows(kind_index, rows)
        return index

    def __len__(self) -> int:
        return sum(len(k) for k in self.kinds.values())

    def nearest(self, kind: HashKind, hashes: list[str]) -> IndexHit | None:
        kind_index = self.kinds.get(kind)
        if kind_index is None:
            return None
        return kind_index.nearest(to_packed(hashes, kind))


def _add_rows(kind_index: KindIndex, rows: list[tuple[int, str, str]]) -> None:
    if not rows:
        return
    kind_index.add(
        to_packed([h for _, _, h in rows], kind_index.kind),
        np.array([r for r, _, _ in rows], dtype=np.int64),
        [b for _, b, _ in rows],
    )
