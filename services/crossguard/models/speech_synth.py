"""Test and evaluation audio made on the machine: speech from text with flite and espeak-ng,
non-speech sounds with sox (Debian packages installed by scripts/setup.sh). Build/eval side
only; the audio service never synthesises anything.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from crossguard.core.errors import ModelError

# Non-speech sounds for false-positive checks: name -> sox "synth" arguments (after the length).
# Mixed, chorded and tremolo tones stand in for music; pink/brown noise for room and traffic.
NON_SPEECH: dict[str, list[str]] = {
    "white-noise": ["whitenoise", "vol", "0.3"],
    "pink-noise": ["pinknoise", "vol", "0.5"],
    "brown-noise": ["brownnoise", "vol", "0.6"],
    "tone-440": ["sine", "440", "vol", "0.5"],
    "tone-1k": ["sine", "1000", "vol", "0.5"],
    "square-220": ["square", "220", "vol", "0.3"],
    "sweep": ["sine", "100-8000", "vol", "0.5"],
    "chord": ["sine", "261.6", "sine", "329.6", "sine", "392", "vol", "0.3"],
    "tremolo-organ": ["sine", "220", "sine", "440", "tremolo", "6", "60", "vol", "0.3"],
    "pluck-melody": ["pluck", "%-12", "pluck", "%-5", "pluck", "%0", "vol", "0.5"],
    "beeps": ["sine", "880", "tremolo", "2", "100", "vol", "0.5"],
}


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ModelError(
            f"{name} is not installed: apt-get install {package} (scripts/setup.sh does it)"
        )
    return path


def _run(args: list[str]) -> None:
    proc = subprocess.run(args, capture_output=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise ModelError(f"{args[0]} failed ({proc.returncode}): {proc.stderr.decode()[:300]}")


def flite_wav(text: str, voice: str = "kal") -> bytes:
    """`text` spoken by flite (mono WAV: 8 kHz with kal, the tests' voice; 16 kHz with kal16,
    awb, rms and slt; `crossguard eval audio` speaks with rms by default)."""
    exe = _tool("flite", "flite")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        _run([exe, "-voice", voice, "-t", text, "-o", str(out)])
        return out.read_bytes()


def espeak_wav(text: str, voice: str = "en-us", speed: int = 160) -> bytes:
    """`text` spoken by espeak-ng (22.05 kHz mono WAV)."""
    exe = _tool("espeak-ng", "espeak-ng")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        _run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text])
        return out.read_bytes()


def sox_sound(kind: str, seconds: float = 5.0, rate: int = 16_000, suffix: str = "wav") -> bytes:
    """A non-speech sound from NON_SPEECH made by sox, as a `suffix` file's bytes."""
    exe = _tool("sox", "sox")
    if kind not in NON_SPEECH:
        raise ModelError(f"unknown sound {kind!r}; one of {sorted(NON_SPEECH)}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"sound.{suffix}"
        _run(
            [
                exe,
                "-n",
                "-r",
                str(rate),
                "-c",
                "1",
                str(out),
                "synth",
                str(seconds),
                *NON_SPEECH[kind],
            ]
        )
        return out.read_bytes()


def sox_convert(data: bytes, suffix: str, *extra: str, effects: tuple[str, ...] = ()) -> bytes:
    """`data` (any format sox reads) re-encoded as a `suffix` file, with output format options
    `extra` (e.g. "-r", "44100", "-c", "2") and sox `effects` (e.g. ("trim", "0", "30"))."""
    exe = _tool("sox", "sox")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in.wav"
        src.write_bytes(data)
        out = Path(tmp) / f"out.{suffix}"
        _run([exe, str(src), *extra, str(out), *effects])
        return out.read_bytes()


def silence_wav(seconds: float, rate: int = 16_000) -> bytes:
    exe = _tool("sox", "sox")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "silence.wav"
        _run(
            [exe, "-n", "-r", str(rate), "-c", "1", "-b", "16", str(out), "trim", "0", str(seconds)]
        )
        return out.read_bytes()


def concat_wav(parts: list[bytes], rate: int = 16_000) -> bytes:
    """WAV clips joined end to end (resampled to `rate`, mono, 16-bit)."""
    exe = _tool("sox", "sox")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, data in enumerate(parts):
            src = Path(tmp) / f"in{i}.wav"
            src.write_bytes(data)
            norm = Path(tmp) / f"n{i}.wav"
            _run([exe, str(src), "-r", str(rate), "-c", "1", "-b", "16", str(norm)])
            paths.append(str(norm))
        out = Path(tmp) / "joined.wav"
        _run([exe, *paths, str(out)])
        return out.read_bytes()
