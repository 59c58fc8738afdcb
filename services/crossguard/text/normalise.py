"""Undo common filter evasions before the text models read a text.

Runs after textprep.sanitize (which already strips zero-width and other format characters and
applies NFKC, folding mathematical alphanumerics such as 𝐤𝐢𝐥𝐥 to "kill"). Here, word by word:

- look-alike letters (Cyrillic/Greek homoglyphs, Unicode's confusables.txt as shipped by the
  confusable-homoglyphs package) are folded to Latin inside words that are written in Latin, or
  that consist only of letters that look Latin in an otherwise Latin text; genuine Cyrillic or
  Greek text is left alone;
- letters spelled out with spaces or one repeated separator ("k i l l", "k.i.l.l", "k-i-l-l")
  are joined, and a joined run that is not one word is split into the fewest vocabulary words;
- leetspeak and masked letters ("k1ll", "y0ur53lf", "k*ll", "b!tch") are decoded when, and
  only when, the decoded token is a word of the encoder's vocabulary and the original is not
  (so "4pm", "h4x0r" and "101" stay as they are);
- emoji become their names (the emoji package's CLDR names; a few whose names hide what they are
  used to say, such as 🔫 "water pistol", are overridden), so a knife emoji reads as "knife";
  a weapon emoji directly before a person ("🔪 you", "🔫 him") reads as the act ("stab you");
- a handful of abbreviations that only exist to evade ("kys") are spelled out.

The vocabulary is the encoder tokenizer's whole-word pieces (lower case). Ordinary text passes
through unchanged: `normalise` returns its input when no rule fires.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

# Letters that evasions put in place of others, and what each can stand for (tried in order).
_LEET: Mapping[str, str] = {
    "0": "o",
    "1": "il",
    "3": "e",
    "4": "a",
    "5": "s",
    "7": "t",
    "8": "b",
    "9": "g",
    "@": "a",
    "$": "s",
    "!": "i",
    "|": "il",
    "+": "t",
    "*": "aeiou",
    "#": "aeiou",
}
# More masked positions than this in one token is noise, not a word.
_MAX_MASKED = 4
_MAX_TOKEN = 24
# Abbreviations whose only use is to say the phrase without writing it.
_SLANG: Mapping[str, str] = {"kys": "kill yourself", "kms": "kill myself"}
# Emoji whose CLDR names do not say what they are used to mean.
_EMOJI_OVERRIDES: Mapping[str, str] = {
    "\U0001f52b": "gun",  # water pistol (redrawn in 2016; still used as a gun)
    "\U0001faa2": "rope",  # knot
    "\U0001f5e1": "dagger",
    "\U0001f52a": "knife",
    "\U0001f480": "skull",
}

# Weapon emoji used as a verb ("I'm going to 🔪 you"): read as the act when a person follows.
_EMOJI_VERBS: Mapping[str, str] = {
    "\U0001f52a": "stab",  # kitchen knife
    "\U0001f5e1": "stab",  # dagger
    "\U0001f52b": "shoot",  # pistol
    "\U0001faa2": "hang",  # knot
    "\U0001f4a3": "bomb",  # bomb
}
_EMOJI_VERB = re.compile(
    "([" + "".join(_EMOJI_VERBS) + "])\ufe0f? *(?=(?:you|u|ya|him|her|them|yourself|myself|"
    "themselves|everyone)\\b)",
    re.IGNORECASE,
)

# Tokens the leetspeak/abbreviation pass looks at: those with a character of _LEET, and the
# abbreviations (every other token would come back unchanged; skipping them keeps the pass cheap).
_CANDIDATE = re.compile(r"\S*[0134578@$!|+*#9]\S*|(?<!\S)\S*\b(?:kys|kms)\b\S*", re.IGNORECASE)
# Three or more single letters separated by single spaces ("k i l l"); once a text has such a
# run, two letters ("o f") are joined too.
_SPACED = re.compile(r"(?<!\S)(?:[^\W\d_] ){2,}[^\W\d_](?!\S)")
_SPACED_PAIR = re.compile(r"(?<!\S)[^\W\d_] [^\W\d_](?!\S)")
# Three or more single letters separated by one repeated separator ("k.i.l.l", "k-i-l-l").
_SEPARATED = re.compile(r"(?<![\w.\-_*])[^\W\d_]([.\-_*~])[^\W\d_](?:\1[^\W\d_])+\1?(?![\w])")
_EDGE_PUNCT = re.compile(r"^([\"'(\[{<]*)(.*?)([\"')\]}>.,;:?!…]*)$", re.DOTALL)


@functools.cache
def _confusable_latin() -> dict[str, str]:
    """Non-Latin character -> the ASCII letter it is confusable with (confusables.txt)."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    out: dict[str, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii():
            continue
        for g in glyphs:
            c = g.get("c", "")
            if len(c) == 1 and c.isascii() and c.isalpha():
                out[char] = c
                break
    return out


@functools.cache
def _confusable_pattern() -> re.Pattern[str]:
    """Matches any character of _confusable_latin() (a fast test before the word loop)."""
    return re.compile("[" + "".join(re.escape(c) for c in sorted(_confusable_latin())) + "]")


@functools.cache
def _emoji_names() -> dict[str, str]:
    import emoji

    names: dict[str, str] = {}
    for char, data in emoji.EMOJI_DATA.items():
        if ord(char[0]) < 0x2000:  # ©, ®: symbols in ordinary text, not pictures
            continue
        name = str(data.get("en", "")).strip(":").replace("_", " ")
        if name:
            names[char] = name
    for char, name in _EMOJI_OVERRIDES.items():
        names[char] = name
        names[char + "\ufe0f"] = name
    return names


@dataclass(frozen=True)
class Normaliser:
    """`vocabulary`: lower-case whole words the encoder knows (decides leetspeak and splits)."""

    vocabulary: frozenset[str]

    def __call__(self, text: str) -> str:
        return self.normalise(text)

    def normalise(self, text: str) -> str:
        out = self._emoji(text)
        out = self._homoglyphs(out, self.vocabulary)
        out = _SEPARATED.sub(lambda m: self._join(m.group(0).replace(m.group(1), "")), out)
        spaced = _SPACED.sub(lambda m: self._join(m.group(0).replace(" ", "")), out)
        if spaced != out:
            spaced = _SPACED_PAIR.sub(lambda m: self._join(m.group(0).replace(" ", "")), spaced)
        out = spaced
        decoded = _CANDIDATE.sub(lambda m: self._token(m.group(0), short=False), out)
        if decoded != out:
            # The text is written in leetspeak: short tokens ("1", "4", "0f", "t0") are too.
            decoded = _CANDIDATE.sub(lambda m: self._token(m.group(0), short=True), decoded)
        return decoded

    # -- rules ------------------------------------------------------------------------------

    @staticmethod
    def _emoji(text: str) -> str:
        if text.isascii():
            return text
        import emoji

        text = _EMOJI_VERB.sub(lambda m: _EMOJI_VERBS[m.group(1)] + " ", text)
        names = _emoji_names()

        def name(chars: str, data: dict[str, Any]) -> str:
            found = names.get(chars) or names.get(chars.replace("\ufe0f", ""))
            return f" {found} " if found else chars

        out = emoji.replace_emoji(text, replace=name)
        if out == text:
            return text
        return re.sub(r" {2,}", " ", out).strip()

    @staticmethod
    def _homoglyphs(text: str, vocabulary: frozenset[str]) -> str:
        if text.isascii():
            return text
        table = _confusable_latin()
        if not _confusable_pattern().search(text):
            return text
        words = text.split(" ")
        latin_words = sum(1 for w in words if w and any("a" <= c.lower() <= "z" for c in w))
        foreign_words = sum(
            1 for w in words if any(c.isalpha() and not c.isascii() and c not in table for c in w)
        )
        out: list[str] = []
        for w in words:
            letters = [c for c in w if c.isalpha()]
            odd = [c for c in letters if not c.isascii()]
            if not odd or any(c not in table for c in odd):
                out.append(w)
                continue
            has_latin = any(c.isascii() for c in letters)
            folded = "".join(table.get(c, c) for c in w)
            # A word wholly of look-alikes ("уоu") is folded only in a text that is mostly
            # Latin, and only into a word the encoder knows (a Russian "горах" stays).
            whole = "".join(c for c in folded if c.isalpha()).lower()
            if has_latin or (latin_words >= foreign_words and whole in vocabulary):
                out.append(folded)
            else:
                out.append(w)
        return " ".join(out)

    def _join(self, letters: str) -> str:
        """Letters that were spelled out: one word, the fewest vocabulary words, or as is."""
        low = letters.lower()
        if low in _SLANG:
            return _SLANG[low]
        if low in self.vocabulary:
            return letters
        words = self._segment(low)
        # Many short words is a guess ("abcd" -> "ab cd"), not a reading.
        if words and len(low) >= 3 * len(words):
            return " ".join(words)
        return letters

    def _segment(self, s: str) -> list[str] | None:
        """Split `s` into the fewest vocabulary words of 2+ letters (or "a"/"i"), or None."""
        n = len(s)
        best: list[list[str] | None] = [None] * (n + 1)
        best[0] = []
        for end in range(1, n + 1):
            for start in range(max(0, end - 20), end):
                prev = best[start]
                word = s[start:end]
                ok = word in self.vocabulary and (len(word) > 1 or word in ("a", "i"))
                if prev is not None and ok:
                    cand = [*prev, word]
                    current = best[end]
                    if current is None or len(cand) < len(current):
                        best[end] = cand
        return best[n]

    def _token(self, token: str, short: bool) -> str:
        m = _EDGE_PUNCT.match(token)
        if m is None:
            return token
        lead, core, trail = m.groups()
        low = core.lower()
        if low in _SLANG:
            return lead + _SLANG[low] + trail
        if not core or len(core) > _MAX_TOKEN or low in self.vocabulary:
            return token
        masked = [i for i, c in enumerate(low) if c in _LEET]
        letters = sum(1 for c in low if c.isalpha())
        if not masked or len(masked) > _MAX_MASKED or (letters < 1 and not short):
            return token
        if not all(c.isalpha() or c in _LEET or c == "'" for c in low):
            return token
        if letters + len(masked) < 3 and not short:
            return token
        if letters == 0 and len(core) > 1:  # numbers stay numbers, even in leetspeak
            return token
        choices = [_LEET[low[i]] for i in masked]
        chars = list(low)
        for combo in itertools.product(*choices):
            for i, c in zip(masked, combo, strict=True):
                chars[i] = c
            word = "".join(chars)
            if word.split("'")[0] in self.vocabulary or word in ("a", "i"):
                return lead + word + trail
        return token


def vocabulary_from_tokenizer(tokenizer_json: str) -> frozenset[str]:
    """Whole-word, alphabetic entries of a WordPiece tokenizer.json's vocabulary."""
    return vocabulary_from_words(json.loads(tokenizer_json)["model"]["vocab"])


def vocabulary_from_words(words: Iterable[str]) -> frozenset[str]:
    """Whole-word, alphabetic entries of a WordPiece vocabulary (e.g. a tokenizer's get_vocab())."""
    return frozenset(w for w in words if w.isalpha() and w.isascii() and w.islower())
