"""The one train/validation split and the labeled-data loaders."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from crossguard.core.taxonomy import Category
from crossguard.models.data import (
    annotated,
    clean_tweet,
    is_validation,
    load_davidson,
    load_openai,
    select,
    split_of,
)

pytestmark = pytest.mark.unit


def test_split_is_sha256_first_byte_mod_5() -> None:
    for text in ["", "hello", "Thanks, have a lovely day!", "日本語 🔥", "x" * 1000]:
        expected = hashlib.sha256(text.encode("utf-8")).digest()[0] % 5 == 0
        assert is_validation(text) is expected
        assert split_of(text) == ("validation" if expected else "train")


def test_split_is_deterministic_and_about_20_percent() -> None:
    texts = [f"sample text number {i}" for i in range(5000)]
    first = [split_of(t) for t in texts]
    assert first == [split_of(t) for t in texts]
    share = first.count("validation") / len(texts)
    assert 0.17 < share < 0.23


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    rows = [
        {"prompt": "a", "S": 1, "H": 0},
        {"prompt": "b", "V": 0, "HR": 1, "SH": 0, "V2": 0},
        {"prompt": "c", "S": 0, "H": 0, "V": 0, "HR": 0, "SH": 0, "S3": 0, "H2": 0, "V2": 0},
    ]
    (tmp_path / "openai-moderation-dev.jsonl").write_text(
        "\n".join(json.dumps(r) for r in rows) + "\n"
    )
    (tmp_path / "davidson-labeled.csv").write_text(
        ",count,hate_speech,offensive_language,neither,class,tweet\n"
        "0,3,3,0,0,0,RT @someone: hateful &amp; bad http://t.co/x\n"
        "1,3,0,3,0,1,offensive tweet\n"
        "2,3,0,0,3,2,nice tweet\n"
    )
    return tmp_path


def test_missing_key_means_not_annotated(data_dir: Path) -> None:
    rows = load_openai(data_dir)
    assert rows[0].labels == {Category.SEXUAL: 1, Category.HATE: 0}
    assert Category.VIOLENCE not in rows[0].labels
    assert [e.text for e, _ in annotated(rows, Category.VIOLENCE)] == ["b", "c"]
    assert [e.any_positive for e in rows] == [True, True, False]


def test_davidson_maps_class_0_to_hate(data_dir: Path) -> None:
    rows = load_davidson(data_dir)
    assert [e.labels[Category.HATE] for e in rows] == [1, 0, 0]
    assert rows[0].text == "@user: hateful & bad http://url"
    assert [e.source for e in rows] == ["davidson:0", "davidson:1", "davidson:2"]


def test_select_uses_the_split(data_dir: Path) -> None:
    rows = load_openai(data_dir)
    val = select(rows, "validation")
    train = select(rows, "train")
    assert len(val) + len(train) == len(rows)
    assert all(is_validation(e.text) for e in val)
    assert not any(is_validation(e.text) for e in train)


def test_clean_tweet() -> None:
    assert clean_tweet("!!! RT @a_b: x &lt;3 https://t.co/abc  y") == "@user: x <3 http://url y"
