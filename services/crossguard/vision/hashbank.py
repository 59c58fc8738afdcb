"""Known-bad hash banks, persisted with SQLAlchemy Core: SQLite embedded, PostgreSQL in
production (the same tables; CROSSGUARD_VISION_HASH_DB is the URL).

A bank is a named list of hashes with the harm category a match signals (a bank of known
child-abuse imagery signals sexual/minors, one of terrorist propaganda extremism). Every change
bumps a revision number in the same transaction, so a service can tell cheaply whether to
rebuild its index.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from crossguard.core.errors import InvalidInput
from crossguard.core.taxonomy import Category
from crossguard.vision.hashing import HashKind, normalise_hash

_META = sa.MetaData()
BANKS = sa.Table(
    "crossguard_hash_banks",
    _META,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("category", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
)
ENTRIES = sa.Table(
    "crossguard_hash_entries",
    _META,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "bank",
        sa.String(128),
        sa.ForeignKey("crossguard_hash_banks.name", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The entry's id at its source (ThreatExchange id, case number, file name); shown on a match.
    sa.Column("entry_id", sa.String(256), nullable=False, default=""),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.UniqueConstraint("bank", "kind", "hash", name="crossguard_hash_entries_unique"),
)
REVISION = sa.Table(
    "crossguard_hash_revision",
    _META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("revision", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True)
class Bank:
    name: str
    category: Category
    description: str = ""


@dataclass(frozen=True)
class BankEntry:
    bank: str
    kind: HashKind
    hash: str
    entry_id: str = ""
    note: str = ""


@dataclass(frozen=True)
class BankSummary:
    bank: Bank
    counts: dict[HashKind, int]


class HashBankStore:
    """The banks in one database. `url`: a SQLAlchemy URL (sqlite:///path, postgresql+psycopg://
    ...); the tables are created when missing."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if str(path) not in ("", ":memory:"):
                path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_foreign_keys)
        _META.create_all(self.engine)
        with self.engine.begin() as conn:
            if conn.execute(sa.select(REVISION.c.revision)).first() is None:
                conn.execute(REVISION.insert().values(id=1, revision=0))

    def close(self) -> None:
        self.engine.dispose()

    # --- banks ---------------------------------------------------------------------------

    def ensure_bank(self, name: str, category: Category | None, description: str = "") -> Bank:
        """The bank `name`, created with `category` when missing (a category is then needed);
        an existing bank keeps its category unless another one is given."""
        name = name.strip()
        if not name:
            raise InvalidInput("a bank needs a name")
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(BANKS).where(BANKS.c.name == name)).first()
            if row is None:
                if category is None:
                    raise InvalidInput(f"bank {name!r} does not exist; give its --category")
                conn.execute(
                    BANKS.insert().values(
                        name=name, category=category.value, description=description
                    )
                )
                _bump(conn)
                return Bank(name, category, description)
            if category is not None and category.value != row.category:
                conn.execute(
                    BANKS.update().where(BANKS.c.name == name).values(category=category.value)
                )
                _bump(conn)
                return Bank(name, category, row.description)
            return Bank(name, Category(row.category), row.description)

    def bank(self, name: str) -> Bank | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(BANKS).where(BANKS.c.name == name)).first()
        return None if row is None else Bank(row.name, Category(row.category), row.description)

    def banks(self) -> list[BankSummary]:
        counts: dict[str, dict[HashKind, int]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(ENTRIES.c.bank, ENTRIES.c.kind, sa.func.count()).group_by(
                    ENTRIES.c.bank, ENTRIES.c.kind
                )
            )
            for bank, kind, n in rows:
                counts.setdefault(bank, {})[HashKind(kind)] = int(n)
            banks = conn.execute(sa.select(BANKS).order_by(BANKS.c.name)).all()
        return [
            BankSummary(Bank(b.name, Category(b.category), b.description), counts.get(b.name, {}))
            for b in banks
        ]

    def drop_bank(self, name: str) -> int:
        """Delete a bank and its entries; returns how many entries went."""
        with self.engine.begin() as conn:
            n = conn.execute(ENTRIES.delete().where(ENTRIES.c.bank == name)).rowcount
            if conn.execute(BANKS.delete().where(BANKS.c.name == name)).rowcount == 0:
                raise InvalidInput(f"no bank {name!r}")
            _bump(conn)
            return int(n)

    # --- entries -------------------------------------------------------------------------

    def add(self, entries: Iterable[BankEntry], batch: int = 5_000) -> int:
        """Add entries (their banks must exist); an entry already in its bank is skipped.
        Returns how many were new."""
        added = 0
        with self.engine.begin() as conn:
            known = {r.name for r in conn.execute(sa.select(BANKS.c.name))}
            pending: list[dict[str, str]] = []
            for e in entries:
                if e.bank not in known:
                    raise InvalidInput(f"bank {e.bank!r} does not exist; create it first")
                pending.append(
                    {
                        "bank": e.bank,
                        "kind": e.kind.value,
                        "hash": e.hash,
                        "entry_id": e.entry_id,
                        "note": e.note,
                    }
                )
                if len(pending) >= batch:
                    added += _insert_new(conn, pending)
                    pending = []
            if pending:
                added += _insert_new(conn, pending)
            if added:
                _bump(conn)
        return added

    def remove(self, bank: str, hashes: Iterable[str]) -> int:
        """Remove these hashes (hex, any kind) from `bank`; returns how many went."""
        removed = 0
        with self.engine.begin() as conn:
            for value in hashes:
                kind, text = normalise_hash(value)
                removed += conn.execute(
                    ENTRIES.delete().where(
                        (ENTRIES.c.bank == bank)
                        & (ENTRIES.c.kind == kind.value)
                        & (ENTRIES.c.hash == text)
                    )
                ).rowcount
            if removed:
                _bump(conn)
        return int(removed)

    def entries(self, bank: str | None = None, limit: int | None = None) -> list[BankEntry]:
        query = sa.select(ENTRIES).order_by(ENTRIES.c.id)
        if bank is not None:
            query = query.where(ENTRIES.c.bank == bank)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [
                BankEntry(r.bank, HashKind(r.kind), r.hash, r.entry_id, r.note)
                for r in conn.execute(query)
            ]

    def iter_kind(self, kind: HashKind) -> Iterator[tuple[int, str, str]]:
        """(row id, bank, hex hash) of every entry of `kind`, streamed."""
        query = (
            sa.select(ENTRIES.c.id, ENTRIES.c.bank, ENTRIES.c.hash)
            .where(ENTRIES.c.kind == kind.value)
            .order_by(ENTRIES.c.id)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(query)
            for row in result:
                yield int(row.id), str(row.bank), str(row.hash)

    def entry(self, row_id: int) -> BankEntry | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(ENTRIES).where(ENTRIES.c.id == row_id)).first()
        return (
            None if r is None else BankEntry(r.bank, HashKind(r.kind), r.hash, r.entry_id, r.note)
        )

    def revision(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(REVISION.c.revision)).scalar_one())


def _sqlite_foreign_keys(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _bump(conn: sa.Connection) -> None:
    conn.execute(REVISION.update().values(revision=REVISION.c.revision + 1))


def _insert_new(conn: sa.Connection, rows: list[dict[str, str]]) -> int:
    """Insert rows whose (bank, kind, hash) is not there yet (portable: no dialect upsert)."""
    keys = {(r["bank"], r["kind"], r["hash"]) for r in rows}
    existing: set[tuple[str, str, str]] = set()
    for bank, kind in {(b, k) for b, k, _ in keys}:
        wanted = [h for b, k, h in keys if b == bank and k == kind]
        for start in range(0, len(wanted), 1_000):
            chunk = wanted[start : start + 1_000]
            found = conn.execute(
                sa.select(ENTRIES.c.hash).where(
                    (ENTRIES.c.bank == bank) & (ENTRIES.c.kind == kind) & ENTRIES.c.hash.in_(chunk)
                )
            )
            existing.update((bank, kind, h) for (h,) in found)
    fresh: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in rows:
        key = (r["bank"], r["kind"], r["hash"])
        if key not in existing and key not in fresh:
            fresh[key] = r
    if fresh:
        conn.execute(ENTRIES.insert(), list(fresh.values()))
    return len(fresh)


# --- import formats ------------------------------------------------------------------------

# ThreatExchange signal type names (python-threatexchange) -> our kinds.
TE_SIGNAL_TYPES: dict[str, HashKind] = {"pdq": HashKind.PDQ, "phash": HashKind.PHASH}


@dataclass(frozen=True)
class ImportReport:
    entries: list[BankEntry]
    skipped: list[str]


def parse_csv(text: str, bank: str) -> ImportReport:
    """CSV with a header row: a `hash` column (PDQ or pHash hex, told apart by length) and
    optional `kind`, `entry_id` (or `id`) and `note` columns."""
    reader = csv.DictReader(io.StringIO(text))
    fields = {f.strip().lower(): f for f in reader.fieldnames or ()}
    if "hash" not in fields:
        raise InvalidInput(f"CSV needs a 'hash' column; it has {sorted(fields)}")
    entries: list[BankEntry] = []
    skipped: list[str] = []
    for line_no, row in enumerate(reader, start=2):
        value = (row.get(fields["hash"]) or "").strip()
        if not value:
            continue
        try:
            declared = (row.get(fields["kind"]) or "").strip().lower() if "kind" in fields else ""
            kind, text_hash = normalise_hash(value, HashKind(declared) if declared else None)
        except ValueError as exc:
            skipped.append(f"line {line_no}: {exc}")
            continue
        entry_id = ""
        for key in ("entry_id", "id"):
            if key in fields:
                entry_id = (row.get(fields[key]) or "").strip()
                break
        note = (row.get(fields["note"]) or "").strip() if "note" in fields else ""
        entries.append(BankEntry(bank, kind, text_hash, entry_id, note))
    return ImportReport(entries, skipped)


def parse_te(text: str, bank: str, default_type: str | None = None) -> ImportReport:
    """ThreatExchange / HMA signal file (python-threatexchange's LocalFileSignalExchangeAPI):
    one `<signal_type> <signal>` per line, e.g. `pdq 0f1e...`; with `default_type` a line may
    hold only the signal. Signal types other than pdq and phash (video_md5, url, ...) are
    skipped and reported."""
    entries: list[BankEntry] = []
    skipped: list[str] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        signal_type, _, signal = line.partition(" ")
        if not signal and default_type:
            signal_type, signal = default_type, line
        kind = TE_SIGNAL_TYPES.get(signal_type.strip().lower())
        if kind is None:
            skipped.append(f"line {line_no}: signal type {signal_type!r} is not an image hash")
            continue
        try:
            _, text_hash = normalise_hash(signal.strip(), kind)
        except ValueError as exc:
            skipped.append(f"line {line_no}: {exc}")
            continue
        entries.append(BankEntry(bank, kind, text_hash, f"te:{line_no}"))
    return ImportReport(entries, skipped)
