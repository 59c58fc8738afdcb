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


def collapse_repetition(text: str, max_repeats: int) -> tuple[str, bool]:
    """Cut a decoding loop: where a phrase of 1..MAX_NGRAM words occurs more than `max_repeats`
    times back to back, keep `max_repeats` occurrences and drop the rest of the text (what
    follows a loop is the loop going on). Returns (text, whether a loop was found).

    Words compare case- and punctuation-insensitively ("no, no, No." is one word three times).
    """
    matches = list(_WORD.finditer(text))
    words = [_norm(m.group()) for m in matches]
    n_words = len(words)
    for start in range(n_words):
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
                keep_end = matches[start + n * max_repeats - 1].end()
                return text[:keep_end], True
    return text, False


def token_budget(seconds: float, per_second: float, floor: int = 8) -> int:
    """Most text tokens to decode for `seconds` of speech at `per_second` (at least `floor`,
    so a short word still fits with its punctuation)."""
    return max(floor, math.ceil(seconds * per_second))
