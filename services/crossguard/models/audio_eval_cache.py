"""The cache of `crossguard eval audio`: synthesised speech and what the audio path heard in
it, so that a rerun (another split, another scoring, more texts) recomputes only what changed.

Layout under the cache directory (default $XDG_CACHE_HOME/crossguard/audio-eval):
  wav/<voice>/<sha256 of text>.wav                speech as the synthesiser made it
  heard/<fingerprint>/<voice>/<sha256>.json       the transcript segments, language, seconds
                                                  and timings of decode → VAD → Whisper

The fingerprint names everything that changes a transcript: the VAD and Whisper entries
(name and version), the audio settings that reach VAD, packing and decoding, and
CACHE_VERSION (bumped when the code that makes a transcript changes). Scoring the transcript
with the text models is not cached: it is cheap, and it must follow the text model.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from crossguard.audio.asr import TranscriptSegment

CACHE_VERSION = 2  # 2: a repeated run followed by other words keeps them
# AudioServiceSettings fields that change what is heard (the rest: serving, limits far above
# the eval's clips, scoring, the tagger).
HEARING_SETTINGS = (
    "window_seconds",
    "vad_threshold",
    "vad_min_speech_ms",
    "vad_min_silence_ms",
    "vad_speech_pad_ms",
    "max_segment_seconds",
    "chunk_seconds",
    "whisper_model",
    "whisper_device",
    "whisper_compute_type",
    "beam_size",
    "language",
    "max_tokens_per_second",
    "max_repeats",
    "no_speech_threshold",
)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "crossguard" / "audio-eval"


@dataclass(frozen=True)
class Heard:
    """What the audio path heard in one clip (before the text models)."""

    segments: list[TranscriptSegment]
    language: str
    seconds: float
    speech_seconds: float
    # Wall seconds of the analysis and of its Whisper calls, in the run that filled the cache.
    analysis_seconds: float
    asr_seconds: float
    flags: tuple[str, ...] = ()


def fingerprint(models: list[tuple[str, str]], settings: dict[str, Any]) -> str:
    what = {
        "cache": CACHE_VERSION,
        "models": sorted(models),
        "settings": {k: settings[k] for k in HEARING_SETTINGS},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class EvalCache:
    def __init__(self, root: Path, fingerprint_: str) -> None:
        self.root = root
        self.fingerprint = fingerprint_
        self.hits = 0
        self.misses = 0

    def speech(self, voice: str, text: str, speak: Callable[[str], bytes]) -> bytes:
        path = self.root / "wav" / voice.replace(":", "-") / f"{_key(text)}.wav"
        if path.exists():
            return path.read_bytes()
        data = speak(text)
        _write(path, data)
        return data

    def heard(self, voice: str, text: str, listen: Callable[[], Heard]) -> Heard:
        path = (
            self.root / "heard" / self.fingerprint / voice.replace(":", "-") / f"{_key(text)}.json"
        )
        if path.exists():
            self.hits += 1
            raw = json.loads(path.read_text())
            raw["segments"] = [
                TranscriptSegment(**{**s, "flags": tuple(s["flags"])}) for s in raw["segments"]
            ]
            raw["flags"] = tuple(raw["flags"])
            return Heard(**raw)
        self.misses += 1
        heard = listen()
        _write(path, json.dumps(asdict(heard)).encode())
        return heard


def _write(path: Path, data: bytes) -> None:
    """Atomically (a killed run leaves no half-written entry)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
