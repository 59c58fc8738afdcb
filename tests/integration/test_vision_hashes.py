"""Hash banks end to end: the store on real SQLite and real PostgreSQL, the hash index over
it, PDQ/pHash of real photographs (scikit-image's samples) and their altered copies, and the
`crossguard hashes` command."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from crossguard.core.taxonomy import Category
from crossguard.vision.hashbank import BankEntry, HashBankStore
from crossguard.vision.hashindex import BankIndex
from crossguard.vision.hashing import HashKind, hash_frame

pytestmark = pytest.mark.integration

THRESHOLDS = {HashKind.PDQ: 31, HashKind.PHASH: 6}
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def photo(name: str) -> Image.Image:
    import skimage.data

    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def altered(img: Image.Image) -> np.ndarray:
    """Resized to 60%, mirrored, re-encoded as JPEG quality 50."""
    small = ImageOps.mirror(img.resize((img.width * 3 // 5, img.height * 3 // 5)))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=50)
    return np.asarray(Image.open(buf).convert("RGB"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = f"crossguard_hashes_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


StoreFactory = Callable[[], HashBankStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    url = (
        f"sqlite:///{tmp_path / 'banks.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    stores: list[HashBankStore] = []

    def make() -> HashBankStore:
        stores.append(HashBankStore(url))
        return stores[-1]

    yield make
    for store in stores:
        store.close()


def test_bank_matches_an_altered_copy_and_not_a_different_image(make_store: StoreFactory) -> None:
    banked = hash_frame(np.asarray(photo("astronaut")))
    store = make_store()
    store.ensure_bank("known-bad", Category.VIOLENCE_GRAPHIC, "test bank")
    added = store.add(
        [
            BankEntry("known-bad", HashKind.PDQ, banked.pdq[0], "case-17", "banked photo"),
            BankEntry("known-bad", HashKind.PHASH, banked.phash[0], "case-17"),
        ]
    )
    assert added == 2
    assert store.add([BankEntry("known-bad", HashKind.PDQ, banked.pdq[0])]) == 0  # duplicate

    index = BankIndex.from_store(make_store(), THRESHOLDS)  # a second connection sees it
    assert len(index) == 2 and index.revision == store.revision()

    copy = hash_frame(altered(photo("astronaut")))
    assert copy.pdq_quality >= 50
    hit = index.nearest(HashKind.PDQ, copy.pdq)
    assert hit is not None and hit.bank == "known-bad" and hit.distance <= 31
    entry = store.entry(hit.row_id)
    assert entry is not None and entry.entry_id == "case-17"
    assert index.nearest(HashKind.PHASH, copy.phash) is not None

    for other in ("coffee", "rocket", "chelsea"):
        different = hash_frame(np.asarray(photo(other)))
        assert index.nearest(HashKind.PDQ, different.pdq) is None, other
        assert index.nearest(HashKind.PHASH, different.phash) is None, other

    # Removal reaches the index once it is rebuilt at the new revision.
    revision = store.revision()
    assert store.remove("known-bad", [banked.pdq[0]]) == 1
    assert store.revision() > revision
    rebuilt = BankIndex.from_store(store, THRESHOLDS)
    assert rebuilt.nearest(HashKind.PDQ, copy.pdq) is None
    summaries = {s.bank.name: s for s in store.banks()}
    assert summaries["known-bad"].counts == {HashKind.PHASH: 1}
    assert summaries["known-bad"].bank.category == Category.VIOLENCE_GRAPHIC


def test_rotated_copy_matches_through_the_dihedral_variants(tmp_path: Path) -> None:
    store = HashBankStore(f"sqlite:///{tmp_path / 'banks.db'}")
    try:
        store.ensure_bank("rot", Category.EXTREMISM)
        store.add([BankEntry("rot", HashKind.PDQ, hash_frame(np.asarray(photo("coffee"))).pdq[0])])
        index = BankIndex.from_store(store, THRESHOLDS)
        rotated = np.asarray(photo("coffee").transpose(Image.Transpose.ROTATE_90))
        hit = index.nearest(HashKind.PDQ, hash_frame(rotated).pdq)
        assert hit is not None and hit.query != 0  # found by a variant, not the frame itself
    finally:
        store.close()


def crossguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "crossguard.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_hashes_command_add_import_list_remove(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    image = tmp_path / "banked.png"
    photo("chelsea").save(image)
    pdq = hash_frame(np.asarray(photo("rocket"))).pdq[0]

    done = crossguard(
        "hashes", "add", "cats", "--image", str(image), "--category", "V2", "--db", db
    )
    assert done.returncode == 0, done.stderr
    assert "2 added" in done.stdout

    csv_file = tmp_path / "list.csv"
    csv_file.write_text(f"hash,entry_id,note\n{pdq},TE-1,rocket\nnot-a-hash,TE-2,\n")
    done = crossguard(
        "hashes", "import", "rockets", str(csv_file), "--category", "extremism", "--db", db
    )
    assert done.returncode == 0, done.stderr
    assert "1 added" in done.stdout and "1 lines skipped" in done.stdout

    te_file = tmp_path / "signals.txt"
    te_file.write_text(f"pdq {pdq}\nurl https://example.org\n")
    done = crossguard("hashes", "import", "rockets", str(te_file), "--db", db)
    assert done.returncode == 0, done.stderr
    assert "0 added, 1 already there" in done.stdout

    listing = crossguard("hashes", "list", "--db", db)
    assert listing.returncode == 0, listing.stderr
    assert "cats" in listing.stdout and "violence/graphic" in listing.stdout
    assert "rockets" in listing.stdout and "extremism" in listing.stdout
    entries = crossguard("hashes", "list", "rockets", "--db", db)
    assert pdq in entries.stdout and "TE-1" in entries.stdout

    done = crossguard("hashes", "remove", "rockets", pdq, "--db", db)
    assert done.returncode == 0 and "1 removed" in done.stdout

    bad = crossguard("hashes", "add", "new-bank", pdq, "--db", db)
    assert bad.returncode == 2
    assert "give its --category" in bad.stderr
