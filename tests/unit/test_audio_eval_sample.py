"""`crossguard eval audio`'s stratified validation sample and voice names."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from crossguard.core.errors import ModelError
from crossguard.models.audio_eval import (
    DEFAULT_FLITE_VOICE,
    eval_sample,
    speaker,
    voice_label,
)
from crossguard.models.data import split_of

pytestmark = pytest.mark.unit


def _texts(prefix: str, n: int, *, validation: bool = True, pad: int = 0) -> list[str]:
    """n distinct texts in (or out of) the validation split."""
    out: list[str] = []
    i = 0
    while len(out) < n:
        text = f"{prefix} {i}" + " x" * pad
        if (split_of(text) == "validation") is validation:
            out.append(text)
        i += 1
    return out


@pytest.fixture()
def make_data(tmp_path: Path) -> Callable[[int, int], Path]:
    def make(openai_pos: int, hate: int) -> Path:
        rows = [{"prompt": t, "H": 1} for t in _texts("openai pos", openai_pos)]
        rows += [{"prompt": t, "H": 0, "V": 0} for t in _texts("openai neg", 10)]
        rows += [{"prompt": t, "V": 1} for t in _texts("openai train", 5, validation=False)]
        rows += [{"prompt": t, "S": 1} for t in _texts("openai long", 3, pad=200)]
        (tmp_path / "openai-moderation-dev.jsonl").write_text(
            "\n".join(json.dumps(r) for r in rows) + "\n"
        )
        with (tmp_path / "davidson-labeled.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(
                ["", "count", "hate_speech", "offensive_language", "neither", "class", "tweet"]
            )
            for cls, prefix in ((0, "hate"), (1, "offensive"), (2, "neither")):
                for k, t in enumerate(_texts(f"tweet {prefix}", hate)):
                    w.writerow([k, 3, 0, 0, 0, cls, t])
        return tmp_path

    return make


def test_openai_positives_first_then_davidson_to_reach_the_positives(
    make_data: Callable[[int, int], Path],
) -> None:
    sample = eval_sample(make_data(4, 20), positives=10, max_chars=100)
    sources = [e.source for e in sample]
    assert len(sample) == 20
    assert sum(e.any_positive for e in sample) == 10
    assert sources.count("openai") == 8  # 4 positives, 4 negatives
    assert sources.count("davidson:0") == 6
    assert sources.count("davidson:2") == 6  # as many negatives as hate tweets
    assert "davidson:1" not in sources  # offensive language is neither class
    assert all(split_of(e.text) == "validation" and len(e.text) <= 100 for e in sample)
    assert not any("train" in e.text or "long" in e.text for e in sample)
    assert sample == eval_sample(make_data(4, 20), positives=10, max_chars=100)


def test_enough_openai_positives_need_no_tweets(make_data: Callable[[int, int], Path]) -> None:
    sample = eval_sample(make_data(6, 5), positives=3, max_chars=100)
    assert [e.source for e in sample] == ["openai"] * 6
    assert sum(e.any_positive for e in sample) == 3


def test_voice_names() -> None:
    assert voice_label("flite") == f"flite:{DEFAULT_FLITE_VOICE}"
    assert voice_label("flite:rms") == "flite:rms"
    for name in ("flite", "flite:kal16", "espeak-ng"):
        assert callable(speaker(name))
    for bad in ("flite:awb_time", "festival"):
        with pytest.raises(ModelError, match="unknown voice"):
            speaker(bad)
