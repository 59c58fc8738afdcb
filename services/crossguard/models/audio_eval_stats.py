"""Statistics for `crossguard eval audio`: the choose/report split, a paired bootstrap of the
AUPRC difference, and WER broken down by what a synthesiser cannot say as written.

The split is by a salted sha256 of the text, so it depends on nothing but the text (not on
labels, scores or the sample's order): options of the audio path are compared on the
"choose" part and the one chosen is reported on the "report" part.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from crossguard.models.evaluate import average_precision

SPLITS = ("choose", "report")


def split_of_text(text: str) -> str:
    """ "choose" or "report", about half each, by a salted hash of the text."""
    digest = hashlib.sha256(b"crossguard-audio-eval-split\n" + text.encode()).digest()
    return SPLITS[digest[0] & 1]


@dataclass(frozen=True)
class PairedAuprc:
    texts: int
    positives: int
    audio: float
    text: float
    # 95 % percentile interval of audio - text over paired bootstrap resamples of the texts.
    low: float
    high: float

    @property
    def diff(self) -> float:
        return self.audio - self.text


def paired_auprc(
    y: np.ndarray,
    p_audio: np.ndarray,
    p_text: np.ndarray,
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedAuprc:
    """AUPRC of both score lists on the same labels, and a paired bootstrap CI of their
    difference (scipy.stats.bootstrap resamples texts, each with both its scores)."""
    audio, text = average_precision(y, p_audio), average_precision(y, p_text)
    low = high = math.nan
    if 0 < int(y.sum()) < len(y) and len(y) >= 4:

        def diff(yy: np.ndarray, pa: np.ndarray, pt: np.ndarray) -> float:
            if not 0 < int(yy.sum()) < len(yy):
                return 0.0  # a resample with one class only: no information either way
            return average_precision(yy, pa) - average_precision(yy, pt)

        res = stats.bootstrap(
            (y, p_audio, p_text),
            diff,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return PairedAuprc(len(y), int(y.sum()), audio, text, low, high)


# Symbols as flite reads them out (heard in the choose part's transcripts: "@user" is "at
# user", "http://" is "http slash slash", "#tag" is "hash tag"). A reference with them spelled
# out is what was said; WER against it counts recognition errors, not spelling.
_SPOKEN_SYMBOLS = (
    ("://", " slash slash "),
    ("@", " at "),
    ("#", " hash "),
    ("/", " slash "),
    ("&", " ampersand "),
    ("*", " asterisk "),
)


def verbalise_symbols(text: str) -> str:
    for symbol, spoken in _SPOKEN_SYMBOLS:
        text = text.replace(symbol, spoken)
    return text


# What a synthesiser cannot say as it is written, detected on the raw text. Each is a reason
# the spoken words differ from the written reference whatever the recogniser does.
_FEATURES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("user name", lambda t: bool(re.search(r"@\w", t))),
    ("url", lambda t: bool(re.search(r"https?://|www\.|\.com\b", t, re.IGNORECASE))),
    ("hashtag", lambda t: bool(re.search(r"#\w", t))),
    ("html entity", lambda t: bool(re.search(r"&#?\w+;", t))),
    ("emoji/symbol", lambda t: any(ord(c) > 0x2000 for c in t)),
    ("digits", lambda t: bool(re.search(r"\d", t))),
    ("retweet", lambda t: bool(re.search(r"\bRT\b", t))),
    ("all caps", lambda t: bool(re.search(r"\b[A-Z]{4,}\b", t))),
    ("letter runs", lambda t: bool(re.search(r"([a-zA-Z])\1\1", t))),
)
FEATURE_NAMES = tuple(name for name, _ in _FEATURES)
OOV = "unknown words"


def text_features(text: str, vocabulary: frozenset[str]) -> tuple[str, ...]:
    """The features of `text` (FEATURE_NAMES), plus OOV when a word of it is not in
    `vocabulary` (misspellings, slang, names: flite spells them by letter-to-sound rules)."""
    found = [name for name, test in _FEATURES if test(text)]
    if any(w not in vocabulary for w in re.findall(r"[a-z]+", text.lower()) if len(w) > 1):
        found.append(OOV)
    return tuple(found)


@dataclass(frozen=True)
class WerGroup:
    name: str
    texts: int
    errors: int
    words: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else math.nan


def wer_groups(
    rows: Sequence[tuple[tuple[str, ...], int, int]],
) -> list[WerGroup]:
    """Corpus WER of every text, of the texts readable as written (no feature; and those
    whose only feature is OOV words), of the rest, and of the texts with each feature (a text
    may count under several), from (features, errors, reference words) per text."""

    def group(name: str, chosen: Iterable[tuple[tuple[str, ...], int, int]]) -> WerGroup:
        picked = list(chosen)
        return WerGroup(name, len(picked), sum(e for _, e, _ in picked), sum(w for *_, w in picked))

    out = [
        group("all texts", rows),
        group("readable as written", (r for r in rows if not r[0])),
        group("  or only unknown words", (r for r in rows if set(r[0]) <= {OOV})),
        group("with any feature", (r for r in rows if r[0])),
    ]
    out += [group(f"  {f}", (r for r in rows if f in r[0])) for f in (*FEATURE_NAMES, OOV)]
    return out


@dataclass(frozen=True)
class WordErrors:
    """Reference words substituted or deleted, by whether the word is in the vocabulary, and
    words inserted."""

    ref_words: int
    ref_oov: int
    errors_in_vocab: int
    errors_oov: int
    insertions: int


def word_errors(
    pairs: Sequence[tuple[str, str]], vocabulary: frozenset[str], jiwer: object
) -> WordErrors:
    """Align each (reference, hypothesis) with jiwer and count the reference words lost (a
    substitution or deletion) by vocabulary membership."""
    ref_words = ref_oov = in_vocab = oov = insertions = 0
    for ref, hyp in pairs:
        out = jiwer.process_words(ref, hyp)  # type: ignore[attr-defined]
        words = ref.split()
        ref_words += len(words)
        ref_oov += sum(w not in vocabulary for w in words)
        for chunk in out.alignments[0]:
            if chunk.type == "insert":
                insertions += chunk.hyp_end_idx - chunk.hyp_start_idx
            elif chunk.type in ("substitute", "delete"):
                for w in words[chunk.ref_start_idx : chunk.ref_end_idx]:
                    if w in vocabulary:
                        in_vocab += 1
                    else:
                        oov += 1
    return WordErrors(ref_words, ref_oov, in_vocab, oov, insertions)


@dataclass(frozen=True)
class RunComparison:
    """Two runs of `crossguard eval audio` (their per-text JSON Lines) on the texts both hold:
    the AUPRC of each audio path, a paired bootstrap CI of the difference (other - base), the
    gap of each to the typed texts, and the WER of each."""

    auprc: PairedAuprc  # .audio: the other run, .text: the base run
    base_to_typed: PairedAuprc
    other_to_typed: PairedAuprc
    base_wer: float
    other_wer: float
    base_spoken_wer: float
    other_spoken_wer: float
    # Texts whose audio-path score moved most: (base row, other row).
    moved: list[tuple[dict[str, object], dict[str, object]]]


def compare_runs(
    base: Sequence[dict[str, object]], other: Sequence[dict[str, object]], *, moved: int = 5
) -> RunComparison:
    """`base` and `other`: per-text rows (audio_eval.TextResult as dicts)."""
    by_key = {str(r["key"]): r for r in base}
    pairs = [(by_key[str(r["key"])], r) for r in other if str(r["key"]) in by_key]
    if not pairs:
        raise ValueError("the two runs have no text in common")

    def col(rows: Iterable[dict[str, object]], name: str) -> np.ndarray:
        return np.array([float(r[name]) for r in rows])  # type: ignore[arg-type]

    b = [p[0] for p in pairs]
    o = [p[1] for p in pairs]
    y = col(b, "label").astype(np.int64)

    def wer(rows: list[dict[str, object]], errors: str, words: str) -> float:
        n = col(rows, words).sum()
        return float(col(rows, errors).sum() / n) if n else math.nan

    changed = sorted(
        pairs,
        key=lambda p: -abs(float(p[1]["p_audio"]) - float(p[0]["p_audio"])),  # type: ignore[arg-type]
    )[:moved]
    return RunComparison(
        auprc=paired_auprc(y, col(o, "p_audio"), col(b, "p_audio")),
        base_to_typed=paired_auprc(y, col(b, "p_audio"), col(b, "p_text")),
        other_to_typed=paired_auprc(y, col(o, "p_audio"), col(o, "p_text")),
        base_wer=wer(b, "errors", "ref_words"),
        other_wer=wer(o, "errors", "ref_words"),
        base_spoken_wer=wer(b, "spoken_errors", "spoken_ref_words"),
        other_spoken_wer=wer(o, "spoken_errors", "spoken_ref_words"),
        moved=changed,
    )
