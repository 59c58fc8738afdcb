"""`crossguard eval audio`'s statistics and cache: the split by text hash, the paired bootstrap
of the AUPRC difference, WER by what the text holds, and transcripts kept between runs."""

from __future__ import annotations

from pathlib import Path

import jiwer
import numpy as np
import pytest

from crossguard.audio.asr import TranscriptSegment
from crossguard.models.audio_eval_cache import EvalCache, Heard, fingerprint
from crossguard.models.audio_eval_stats import (
    OOV,
    compare_runs,
    paired_auprc,
    split_of_text,
    text_features,
    wer_groups,
    word_errors,
)

pytestmark = pytest.mark.unit

VOCAB = frozenset({"you", "are", "a", "nice", "person", "see", "at", "the", "park"})


def test_split_depends_on_the_text_only_and_halves_the_sample() -> None:
    texts = [f"text number {i}" for i in range(400)]
    parts = [split_of_text(t) for t in texts]
    assert parts == [split_of_text(t) for t in texts]
    assert set(parts) == {"choose", "report"}
    assert 160 < parts.count("choose") < 240


def test_paired_bootstrap_of_the_auprc_difference() -> None:
    rng = np.random.default_rng(1)
    y = np.array([1] * 30 + [0] * 30)
    good = y + rng.normal(0, 0.3, 60)
    same = paired_auprc(y, good, good, resamples=200)
    assert same.diff == 0 and same.low == 0 and same.high == 0
    noisy = good + rng.normal(0, 1.5, 60)
    worse = paired_auprc(y, noisy, good, resamples=500)
    assert worse.diff < 0 and worse.low <= worse.diff <= worse.high
    assert worse.high < 0  # clearly worse: the interval excludes 0
    assert (worse.texts, worse.positives) == (60, 30)


def test_features_of_what_a_synthesiser_cannot_say() -> None:
    assert text_features("you are a nice person", VOCAB) == ()
    tweet = "RT @bob: you are a TRASH person &#128514; http://t.co/x #sad 2day yooo"
    found = text_features(tweet, VOCAB)
    for name in ("user name", "url", "hashtag", "html entity", "digits", "retweet", "all caps"):
        assert name in found
    assert "letter runs" in found and OOV in found
    assert text_features("see you at the park 😀", VOCAB) == ("emoji/symbol",)


def test_wer_groups_and_word_errors() -> None:
    rows = [((), 1, 10), (("url",), 4, 8), (("url", OOV), 2, 2)]
    groups = {g.name.strip(): g for g in wer_groups(rows)}
    assert groups["all texts"].wer == pytest.approx(7 / 20)
    assert groups["readable as written"].wer == pytest.approx(0.1)
    assert (groups["with any feature"].texts, groups["url"].errors) == (2, 6)
    assert groups[OOV].words == 2
    pair = ("you are a nice persn at the park", "you are nice person at the park today")
    w = word_errors([pair], VOCAB, jiwer)
    assert (w.ref_words, w.ref_oov) == (8, 1)
    assert (w.errors_in_vocab, w.errors_oov, w.insertions) == (1, 1, 1)


def test_cache_keeps_speech_and_transcripts(tmp_path: Path) -> None:
    calls: list[str] = []
    fp = fingerprint([("whisper-base", "1")], _settings(beam_size=1))
    assert fp != fingerprint([("whisper-base", "1")], _settings(beam_size=5))
    assert fp == fingerprint([("whisper-base", "1")], {**_settings(beam_size=1), "processes": 4})
    cache = EvalCache(tmp_path, fp)
    heard = Heard(
        [TranscriptSegment(0.5, 1.5, "hello there", 3, -0.2, 0.01, ("repetition",))],
        "en",
        2.0,
        1.0,
        0.4,
        0.3,
        ("repetition",),
    )

    def speak(text: str) -> bytes:
        calls.append(text)
        return b"RIFF"

    assert cache.speech("flite:rms", "hello there", speak) == b"RIFF"
    assert cache.speech("flite:rms", "hello there", speak) == b"RIFF"
    assert cache.heard("flite:rms", "hello there", lambda: heard) == heard
    again = EvalCache(tmp_path, fp).heard("flite:rms", "hello there", lambda: pytest.fail("no"))
    assert again == heard and calls == ["hello there"]


def _settings(**changed: object) -> dict[str, object]:
    from crossguard.audio.settings import AudioServiceSettings

    return {**AudioServiceSettings().model_dump(mode="json"), **changed}


def test_symbols_as_flite_says_them() -> None:
    from crossguard.models.audio_eval import normalise
    from crossguard.models.audio_eval_stats import verbalise_symbols

    said = normalise(verbalise_symbols("@bob look #win http://url & a/b *"))
    assert said == "at bob look hash win http slash slash url ampersand a slash b asterisk"


def test_compare_runs_pairs_texts_by_key() -> None:
    rng = np.random.default_rng(2)
    y = [1] * 20 + [0] * 20

    def row(i: int, p_audio: float, errors: int) -> dict[str, object]:
        return {
            "key": f"k{i}",
            "label": y[i],
            "p_text": float(y[i]),
            "p_audio": p_audio,
            "errors": errors,
            "ref_words": 10,
            "spoken_errors": errors // 2,
            "spoken_ref_words": 10,
            "heard": f"text {i}",
        }

    noisy = y + rng.normal(0, 0.6, 40)
    base = [row(i, float(noisy[i]), 4) for i in range(40)]
    # The other run holds 30 of the texts (in another order), perfectly separated, fewer errors.
    other = [row(i, float(y[i]), 1) for i in reversed(range(10, 40))]
    c = compare_runs(base, other, moved=3)
    assert c.auprc.texts == 30
    assert c.auprc.audio == pytest.approx(1.0)
    assert c.auprc.text < 1.0
    assert 0 <= c.auprc.low <= c.auprc.high
    assert c.other_to_typed.diff == pytest.approx(0.0)
    assert c.base_to_typed.diff < 0
    assert (c.base_wer, c.other_wer) == (pytest.approx(0.4), pytest.approx(0.1))
    assert (c.base_spoken_wer, c.other_spoken_wer) == (pytest.approx(0.2), pytest.approx(0.0))
    moved = [abs(float(o["p_audio"]) - float(b["p_audio"])) for b, o in c.moved]  # type: ignore[arg-type]
    assert len(moved) == 3 and moved == sorted(moved, reverse=True)
    with pytest.raises(ValueError):
        compare_runs(base[:5], other[20:], moved=1)
