"""Which language a text is in, and whether the text models can read it.

The identifier is py3langid (BSD-3-Clause; langid.py's naive Bayes model over byte n-grams,
97 languages, shipped inside the package: nothing is downloaded). It costs about 0.05-0.25 ms
per text on one core.

A text is *unsupported* when the models cannot read it, so their scores say nothing about it:

- most of its letters are in a script other than Latin (Cyrillic, Arabic, Devanagari, Han, ...)
  and the language identified is not a supported one; or
- it is in Latin script, has at least `min_letters` letters, py3langid names a language that is
  not supported with probability at least `min_confidence`, and gives the supported languages
  together less than `max_supported` (English-like texts that langid calls Nigerian Pidgin or
  Scots with English a close second stay supported).

Shorter Latin texts ("lol", "kys", "u r dumb") are too short to tell apart and are read as the
supported language: langid gives English slang and profanity low English probabilities, so a
stricter rule would send a good share of ordinary English posts to review. Thresholds were
chosen on the labeled data and the development cases (docs/text-model.md, Languages): with 0.5,
0.1 and 8 letters, 7 of 3,000 Davidson tweets (mostly genuine Dutch) are unsupported, and every
non-English development case is.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

# Letters up to U+024F are Latin (Basic Latin, Latin-1, Latin Extended-A/B).
_LATIN_END = 0x0250
UNDETERMINED = "und"
# The missing-signal reason for a text the models cannot read (core.results.UnreadPart).
UNSUPPORTED_LANGUAGE = "unsupported_language"


@dataclass(frozen=True)
class LanguageVerdict:
    """`language`: ISO 639-1 code from py3langid ("und" when the text is too short to tell);
    `confidence`: its probability; `supported`: whether the text models read this text;
    `reader`: which of them does (crossguard.text.model: ENGLISH or MULTILINGUAL; "" when none
    or not said)."""

    language: str
    confidence: float
    supported: bool
    reader: str = ""


class LanguageIdentifier:
    """Thread-safe after `load()` (py3langid's classify keeps no state between calls)."""

    def __init__(
        self,
        supported: Collection[str],
        *,
        min_confidence: float = 0.5,
        max_supported: float = 0.1,
        min_letters: int = 8,
    ) -> None:
        self.supported = frozenset(supported)
        self.min_confidence = min_confidence
        self.max_supported = max_supported
        self.min_letters = min_letters
        self._lock = threading.Lock()
        self._model: Any = None

    def load(self) -> None:
        with self._lock:
            if self._model is None:
                from py3langid.langid import MODEL_FILE
                from py3langid.langid import LanguageIdentifier as _Langid

                self._model = _Langid.from_model_file(MODEL_FILE, norm_probs=True)

    def identify(self, text: str) -> LanguageVerdict:
        model = self._model
        if model is None:
            raise RuntimeError("LanguageIdentifier.load() was not called")
        letters = latin = 0
        for ch in text:
            if ch.isalpha():
                letters += 1
                if ord(ch) < _LATIN_END:
                    latin += 1
        if letters == 0:
            return LanguageVerdict(UNDETERMINED, 0.0, True)
        other_script = latin * 2 < letters
        if not other_script and letters < self.min_letters:
            return LanguageVerdict(UNDETERMINED, 0.0, True)
        ranked = model.rank(text)
        language, confidence = str(ranked[0][0]), float(ranked[0][1])
        if language in self.supported:
            return LanguageVerdict(language, confidence, True)
        if other_script:
            return LanguageVerdict(language, confidence, False)
        readable = sum(float(p) for lang, p in ranked if lang in self.supported)
        supported = confidence < self.min_confidence or readable >= self.max_supported
        return LanguageVerdict(language, confidence, supported)
