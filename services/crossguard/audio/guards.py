"""Guards against Whisper's known failure modes, as plain functions on its output.

Whisper hallucinates on non-speech ("you", "Thanks for watching", URLs) and can loop on
screams or music, repeating a phrase until its token budget runs out. The analyser only
transcribes VAD speech and caps tokens per second of speech; these functions find loops and
judge what the cap means for a transcript.
"""

from __future__ import annotations

import math
import re

MAX_NGRAM = 8
TOKEN_CAP = "token_cap"
REPETITION = "repetition"
NO_SPEECH = "no_speech"

_WORD = re.compile(r"\S+")


def _norm(word: str) -> str:
    return word.strip(".,!?;:\"'()[]").lower()


def collapse_repetition(text: str, max_repeats: int) -> tuple[str, bool, bool]:
    """Cut decoding loops: where a phrase of 1..MAX_NGRAM words occurs more than `max_repeats`
    times back to back, keep `max_repeats` occurrences. Returns (text, whether a run was cut,
    whether the text ends in one).

    A run that reaches the end of the text is Whisper looping until its budget ran out: the
    caller drops what follows. A run followed by other words is speech that repeats itself
    ("@user @user @user @user you are …", "la la la la" then an insult): the words after it
    are kept, so repeating a phrase cannot hide what is said next.

    Words compare case- and punctuation-insensitively ("no, no, No." is one word three times).
    """
    matches = list(_WORD.finditer(text))
    words = [_norm(m.group()) for m in matches]
    n_words = len(words)
    kept: list[str] = []
    piece_start = 0  # first word of the piece being kept
    start = 0
    cut = at_end = False
    while start < n_words:
        run_end = None
        for n in range(1, MAX_NGRAM + 1):
            if start + n * (max_repeats + 1) > n_words:
                break
            phrase = words[start : start + n]
            if not any(phrase):
                continue
            repeats = 1
            pos = start + n
            while pos + n <= n_words and words[pos : pos + n] == phrase:
                repeats += 1
                pos += n
            if repeats > max_repeats:
                keep_end = start + n * max_repeats
                kept.append(text[matches[piece_start].start() : matches[keep_end - 1].end()])
                run_end = pos
                break
        if run_end is None:
            start += 1
            continue
        cut = True
        piece_start = start = run_end
        if run_end >= n_words:
            at_end = True
    if not cut:
        return text, False, False
    if piece_start < n_words:
        kept.append(text[matches[piece_start].start() :])
    return " ".join(kept), True, at_end


def token_budget(seconds: float, per_second: float, floor: int = 8) -> int:
    """Most text tokens to decode for `seconds` of speech at `per_second` (at least `floor`,
    so a short word still fits with its punctuation)."""
    return max(floor, math.ceil(seconds * per_second))
