"""In-memory index of the banks' hashes: exact multi-index hashing (MIH, Norouzi et al.) over
sorted numpy arrays, written here because no maintained library met the speed target.

faiss's `IndexBinaryMultiHash` (what this replaced) does the same search with hash maps; on the
same 1,000,000 PDQ hashes and queries, with identical results, this layout did about 20 times
as many lookups per CPU-second (docs/vision.md, `crossguard bench hashes`).

A hash is cut into 16-bit chunks (PDQ: 16, pHash: 4). Two hashes within `threshold` bits differ
in at most `nflip = threshold // chunks` bits of at least one chunk (pigeonhole), so probing, in
every chunk's table, the query's chunk value and each value within `nflip` bit flips of it finds
every entry within the threshold: the search is exact. PDQ at 31: 1 flip, 17 probes per chunk.

Per chunk, the entries are sorted by their chunk value, with a 2^16 + 1 offsets array giving each
value's range, and stored as 16-byte records holding the entry's position and 96 bits of its
hash (PDQ: from the words other than the chunk's; pHash: all 64). A query's probes become
contiguous ranges of records; the Hamming distance on those bits is a lower bound of the full
distance and rejects almost every non-match without reading the full hash (a random access); the
few that pass are verified on the full hash. Everything is vectorised over one query batch (an
image's 8 variants).

Rows are added in blocks (`add`); the tables are rebuilt from all rows on the next `build` or
search after an add (one stable radix argsort per chunk: seconds at 1,000,000).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from crossguard.vision.hashbank import HashBankStore
from crossguard.vision.hashing import BITS, HashKind, to_packed

CHUNK_BITS = 16
_KEYS = 1 << CHUNK_BITS
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
_RECORD = np.dtype("V16")


def _pairs(items: np.ndarray) -> np.ndarray:
    """16-byte items as [n, 2] uint64."""
    return items.view(np.uint64).reshape(-1, 2)


@dataclass(frozen=True)
class IndexHit:
    """The nearest bank entry within the threshold: its bank, store row id, distance, and the
    index of the query hash (which flip/rotate variant) that found it."""

    bank: str
    row_id: int
    distance: int
    query: int


def flip_masks(nflip: int) -> np.ndarray:
    """Every 16-bit mask with at most `nflip` bits set (0 first): the probes of one chunk."""
    values = np.arange(_KEYS, dtype=np.intp)
    return values[np.bitwise_count(values) <= nflip]


@dataclass(frozen=True)
class _Tables:
    """The built, read-only search structure over the first `size` rows."""

    size: int
    codes: np.ndarray  # [size, words] uint64: the full hashes
    records: np.ndarray  # [chunks * size, 2] uint64: filter word, low 32 filter bits | position
    offsets: np.ndarray  # [chunks * (2^16 + 1)]: each chunk value's record range
    row_ids: np.ndarray  # [size] int64: store row ids
    bank_of: np.ndarray  # [size] int32: position in KindIndex.banks

    @property
    def nbytes(self) -> int:
        arrays = (self.codes, self.records, self.offsets, self.row_ids, self.bank_of)
        return sum(a.nbytes for a in arrays)


class KindIndex:
    """The hashes of one kind, from every bank. Thread-safe: searches may run concurrently with
    each other and with `add`."""

    def __init__(self, kind: HashKind, threshold: int) -> None:
        self.kind = kind
        self.threshold = threshold
        self.words = BITS[kind] // 64
        self.chunks = BITS[kind] // CHUNK_BITS
        self.masks = flip_masks(threshold // self.chunks)
        # Filter bits of chunk c (which lies in word c // 4): the next word whole and the low
        # half of the one after; disjoint bit sets, so their distance is a lower bound.
        word = np.arange(self.chunks) // (64 // CHUNK_BITS)
        self._f0 = (word + 1) % self.words
        self._f1 = (word + 2) % self.words
        self.banks: list[str] = []
        self._bank_pos: dict[str, int] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._pending_rows = 0
        self._lock = threading.Lock()
        self._tables = self._build(_empty(self.words))

    def __len__(self) -> int:
        with self._lock:
            return self._tables.size + self._pending_rows

    @property
    def nbytes(self) -> int:
        """Bytes held by the built tables (excluding rows added since the last build)."""
        return self._tables.nbytes

    def add(self, packed: np.ndarray, row_ids: np.ndarray, banks: list[str]) -> None:
        """Add packed rows [n, bits/8] with their store row ids and bank names."""
        if len(packed) == 0:
            return
        codes = _words(packed, self.words).copy()
        with self._lock:
            bank_of = np.empty(len(banks), dtype=np.int32)
            for i, bank in enumerate(banks):
                pos = self._bank_pos.get(bank)
                if pos is None:
                    pos = self._bank_pos[bank] = len(self.banks)
                    self.banks.append(bank)
                bank_of[i] = pos
            self._pending.append((codes, np.asarray(row_ids, dtype=np.int64), bank_of))
            self._pending_rows += len(codes)

    def build(self) -> None:
        """Sort the rows added since the last build into the tables (a search does it too)."""
        self._current()

    def _current(self) -> _Tables:
        if not self._pending:
            return self._tables
        with self._lock:
            if self._pending:
                old = self._tables
                blocks = [(old.codes, old.row_ids, old.bank_of), *self._pending]
                rows = _Rows(*(np.concatenate(parts) for parts in zip(*blocks, strict=True)))
                self._tables = self._build(rows)
                self._pending = []
                self._pending_rows = 0
            return self._tables

    def search(self, packed: np.ndarray) -> list[IndexHit | None]:
        """For each query row, its nearest entry within the threshold (ties: the entry added
        first), or None."""
        tables = self._current()
        hits: list[IndexHit | None] = [None] * len(packed)
        if tables.size == 0 or len(packed) == 0:
            return hits
        query = _words(packed, self.words)
        found = self._candidates(tables, query)
        if found is None:
            return hits
        qid, pos, dist = found
        # Nearest per query: sort by (query, distance, position), keep each query's first.
        order = np.lexsort((pos, dist, qid))
        qid, pos, dist = qid[order], pos[order], dist[order]
        first = np.flatnonzero(np.r_[True, qid[1:] != qid[:-1]])
        for i in first:
            p = int(pos[i])
            hits[int(qid[i])] = IndexHit(
                self.banks[int(tables.bank_of[p])],
                int(tables.row_ids[p]),
                int(dist[i]),
                int(qid[i]),
            )
        return hits

    def _candidates(
        self, tables: _Tables, query: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(query index, position, distance) of every entry within the threshold of a query
        (an entry found through several chunks may repeat)."""
        nq, chunks, probes = len(query), self.chunks, len(self.masks)
        keys = query.view(np.uint16).astype(np.intp)  # [nq, chunks]
        slots = (keys[:, :, None] ^ self.masks) + (np.arange(chunks) * (_KEYS + 1))[:, None]
        starts = tables.offsets[slots.ravel()]
        lengths = tables.offsets[slots.ravel() + 1] - starts
        ends = np.cumsum(lengths)
        total = int(ends[-1])
        if total == 0:
            return None
        # The records of every probe's range, concatenated: range r's k-th record. Records and
        # filters move as opaque 16-byte items (numpy's fast path for take and repeat).
        index = np.repeat(starts - (ends - lengths), lengths) + np.arange(total)
        records = _pairs(tables.records.view(_RECORD).ravel()[index])
        # Each probe's query filter bits, repeated over its range.
        qfilter = np.empty((nq, chunks, probes, 2), dtype=np.uint64)
        qfilter[..., 0] = query[:, self._f0, None]
        qfilter[..., 1] = query[:, self._f1, None] & _LOW32 if self.words > 1 else 0
        diff = records ^ _pairs(np.repeat(qfilter.view(_RECORD).ravel(), lengths))
        bound = np.bitwise_count(diff[:, 0])
        bound += np.bitwise_count(diff[:, 1] & _LOW32)
        passed = np.flatnonzero(bound <= self.threshold)
        if len(passed) == 0:
            return None
        pos = (records[passed, 1] >> _SHIFT32).astype(np.intp)
        qid = np.searchsorted(ends, passed, side="right") // (chunks * probes)
        dist = np.bitwise_count(tables.codes[pos] ^ query[qid]).sum(axis=1, dtype=np.int64)
        keep = dist <= self.threshold
        return (qid[keep], pos[keep], dist[keep]) if keep.any() else None

    def _build(self, rows: _Rows) -> _Tables:
        size, chunks = len(rows.codes), self.chunks
        if size >= 1 << 32:
            raise ValueError(f"{size} hashes: positions are stored in 32 bits")
        keys = rows.codes.view(np.uint16)  # [size, chunks]: chunk c lies in word c // 4
        records = np.empty((chunks, size, 2), dtype=np.uint64)
        offsets = np.empty((chunks, _KEYS + 1), dtype=np.intp)
        for c in range(chunks):
            order = np.argsort(keys[:, c], kind="stable")  # radix sort; keeps positions ascending
            records[c, :, 0] = rows.codes[order, self._f0[c]]
            low = rows.codes[order, self._f1[c]] & _LOW32 if self.words > 1 else 0
            records[c, :, 1] = low | (order.astype(np.uint64) << _SHIFT32)
            offsets[c, 0] = c * size
            np.cumsum(np.bincount(keys[:, c], minlength=_KEYS), out=offsets[c, 1:])
            offsets[c, 1:] += c * size
        return _Tables(
            size, rows.codes, records.reshape(-1, 2), offsets.ravel(), rows.row_ids, rows.bank_of
        )

    def nearest(self, packed: np.ndarray) -> IndexHit | None:
        """The closest hit over several query rows (an image's variants), or None."""
        found = [h for h in self.search(packed) if h is not None]
        return min(found, key=lambda h: h.distance) if found else None


@dataclass(frozen=True)
class _Rows:
    codes: np.ndarray
    row_ids: np.ndarray
    bank_of: np.ndarray


def _empty(words: int) -> _Rows:
    return _Rows(
        np.zeros((0, words), dtype=np.uint64),
        np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.int32),
    )


def _words(packed: np.ndarray, words: int) -> np.ndarray:
    """Packed uint8 rows [n, bits/8] as [n, words] uint64 (a view when already contiguous)."""
    return np.ascontiguousarray(packed, dtype=np.uint8).view(np.uint64).reshape(-1, words)


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
            kind_index.build()  # here, not in the first request's lookup
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
