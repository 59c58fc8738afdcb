"""`crossguard hashes add / remove / list / import`: manage the known-bad hash banks in the
store the vision service reads (CROSSGUARD_VISION_HASH_DB, or --db)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from crossguard.core.errors import InvalidInput
from crossguard.core.taxonomy import Category
from crossguard.vision.hashbank import BankEntry, HashBankStore, parse_csv, parse_te
from crossguard.vision.hashing import HashKind, normalise_hash

# Tables at least 160 columns wide, so that full hashes show when the output is not a terminal.
console = Console(width=None if Console().is_terminal else 160)


def _store(db: str | None) -> HashBankStore:
    from crossguard.vision.settings import VisionServiceSettings

    return HashBankStore(db or VisionServiceSettings().hash_db.get_secret_value())


def _category(name: str | None) -> Category | None:
    if name is None:
        return None
    try:
        return Category.parse(name)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def image_hashes(path: Path) -> list[tuple[HashKind, str]]:
    """PDQ and pHash of an image file, decoded with the service's safe decoder."""
    from crossguard.vision.decode import decode_image
    from crossguard.vision.hashing import hash_frame
    from crossguard.vision.settings import DecodeLimits

    image = decode_image(path.read_bytes(), "", DecodeLimits())
    hashes = hash_frame(image.frames[0].pixels)
    return [(HashKind.PDQ, hashes.pdq[0]), (HashKind.PHASH, hashes.phash[0])]


def run_add(
    bank: str,
    hashes: Sequence[str],
    images: Sequence[Path],
    category: str | None,
    entry_id: str,
    note: str,
    db: str | None,
) -> int:
    store = _store(db)
    try:
        store.ensure_bank(bank, _category(category))
        entries: list[BankEntry] = []
        for value in hashes:
            try:
                kind, text = normalise_hash(value)
            except ValueError as exc:
                raise InvalidInput(str(exc)) from None
            entries.append(BankEntry(bank, kind, text, entry_id, note))
        for path in images:
            for kind, text in image_hashes(path):
                entries.append(BankEntry(bank, kind, text, entry_id or path.name, note))
        added = store.add(entries)
        click.echo(f"{bank}: {added} added, {len(entries) - added} already there")
    finally:
        store.close()
    return 0


def run_remove(bank: str, hashes: Sequence[str], db: str | None) -> int:
    store = _store(db)
    try:
        try:
            removed = store.remove(bank, hashes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        click.echo(f"{bank}: {removed} removed")
    finally:
        store.close()
    return 0


def run_list(bank: str | None, limit: int, db: str | None) -> int:
    store = _store(db)
    try:
        if bank is None:
            table = Table("bank", "category", "pdq", "phash", "description")
            for summary in store.banks():
                table.add_row(
                    summary.bank.name,
                    summary.bank.category.value,
                    str(summary.counts.get(HashKind.PDQ, 0)),
                    str(summary.counts.get(HashKind.PHASH, 0)),
                    summary.bank.description,
                )
        else:
            if store.bank(bank) is None:
                raise InvalidInput(f"no bank {bank!r}")
            table = Table("kind", "hash", "entry id", "note", title=bank)
            for e in store.entries(bank, limit=limit):
                table.add_row(e.kind.value, e.hash, e.entry_id, e.note)
        console.print(table)
    finally:
        store.close()
    return 0


def run_import(
    bank: str, path: Path, fmt: str, category: str | None, signal_type: str | None, db: str | None
) -> int:
    text = path.read_text(encoding="utf-8")
    if fmt == "auto":
        fmt = (
            "csv"
            if path.suffix.lower() == ".csv" or text.lstrip().lower().startswith("hash")
            else "te"
        )
    report = parse_csv(text, bank) if fmt == "csv" else parse_te(text, bank, signal_type)
    store = _store(db)
    try:
        store.ensure_bank(bank, _category(category))
        added = store.add(report.entries)
    finally:
        store.close()
    click.echo(
        f"{bank}: read {len(report.entries)} hashes from {path} ({fmt}); {added} added, "
        f"{len(report.entries) - added} already there, {len(report.skipped)} lines skipped"
    )
    for line in report.skipped[:20]:
        click.echo(f"  skipped {line}")
    return 0
