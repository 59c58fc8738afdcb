"""The bench's texts: a fixed, realistic mix of labeled moderation data."""

from __future__ import annotations

from pathlib import Path

# Texts longer than this many whitespace words are skipped, so that every text is one chunk in
# the service and raw/service/naive do the same work.
MAX_WORDS = 100


def bench_texts(n: int = 512, data_dir: Path | None = None) -> list[str]:
    """A fixed, realistic mix: half OpenAI moderation samples (longer, varied), half Davidson
    tweets (short), each at most MAX_WORDS words, interleaved so every window of requests has
    both kinds; deterministic order."""
    from crossguard.models.data import load_davidson, load_openai

    openai = [
        t for e in load_openai(data_dir) if (t := e.text.strip()) and len(t.split()) <= MAX_WORDS
    ]
    a = openai[: n // 2]
    b = [e.text for e in load_davidson(data_dir) if e.text][: n - len(a)]
    out: list[str] = []
    for i in range(max(len(a), len(b))):
        out.extend(x[i] for x in (a, b) if i < len(x))
    return out
