"""Decoding and limits of audio parts (in memory: soundfile encodes the inputs)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from crossguard.audio.decode import AudioDecodeError, AudioLimits, decode_all, decode_windows
from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.media import media_reason

pytestmark = pytest.mark.unit

LIMITS = AudioLimits(
    max_bytes=5_000_000,
    max_seconds=60.0,
    min_sample_rate=8000,
    max_sample_rate=96_000,
    max_channels=2,
    window_seconds=1.0,
)


def _tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def _encode(audio: np.ndarray, rate: int, fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, audio, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def _peak_hz(audio: np.ndarray, rate: int = 16_000) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.fft.rfftfreq(len(audio), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [
        ("WAV", "PCM_16", 44_100, 2),
        ("FLAC", "PCM_16", 22_050, 1),
        ("OGG", "OPUS", 48_000, 1),
        ("OGG", "VORBIS", 16_000, 2),
        ("MP3", "MPEG_LAYER_III", 44_100, 1),
    ],
)
def test_formats_decode_to_16k_mono_with_pitch_kept(
    fmt: str, subtype: str, rate: int, channels: int
) -> None:
    data = _encode(_tone(3.0, rate, channels=channels), rate, fmt, subtype)
    info, audio = decode_all(data, LIMITS)
    assert info.format == fmt
    assert info.sample_rate == rate
    assert info.channels == channels
    assert audio.dtype == np.float32
    # MP3 and Opus add encoder delay/padding: a few tens of ms either way.
    assert abs(len(audio) / 16_000 - 3.0) < 0.1
    assert abs(_peak_hz(audio) - 440.0) < 5.0


def test_long_audio_comes_in_windows() -> None:
    data = _encode(_tone(5.5, 16_000), 16_000, "WAV", "PCM_16")
    _, windows = decode_windows(data, LIMITS)
    sizes = [len(w) for w in windows]
    assert sizes == [16_000] * 5 + [8_000]


def test_resampled_windows_add_up() -> None:
    data = _encode(_tone(4.0, 44_100), 44_100, "WAV", "PCM_16")
    _, windows = decode_windows(data, LIMITS)
    sizes = [len(w) for w in windows]
    assert len(sizes) >= 4
    assert abs(sum(sizes) - 64_000) <= 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not audio at all, just some text " * 20, "cannot decode"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(64), "cannot decode"),
    ],
)
def test_garbage_is_a_clear_decode_error(data: bytes, message: str) -> None:
    with pytest.raises(AudioDecodeError, match=message) as err:
        decode_all(data, LIMITS)
    assert isinstance(err.value, InvalidInput)


def test_truncated_flac_is_a_decode_error_not_a_crash() -> None:
    data = _encode(_tone(3.0, 16_000), 16_000, "FLAC", "PCM_16")
    broken = data[: len(data) // 2] + bytes(range(256)) * 8
    with pytest.raises(InvalidInput):
        decode_all(broken, LIMITS)


def test_unsupported_container_is_refused() -> None:
    data = _encode(_tone(1.0, 16_000), 16_000, "AIFF", "PCM_16")
    with pytest.raises(AudioDecodeError, match="AIFF is not supported"):
        decode_all(data, LIMITS)


@pytest.mark.parametrize(
    ("audio", "rate", "limits", "message", "reason"),
    [
        (_tone(1.0, 16_000), 16_000, {"max_bytes": 1000}, "MAX_BYTES", "media_audio_too_large"),
        (_tone(3.0, 16_000), 16_000, {"max_seconds": 2.0}, "MAX_SECONDS", "media_audio_too_long"),
        (_tone(1.0, 4000), 4000, {}, "SAMPLE_RATE", "media_audio_sample_rate"),
        (
            _tone(1.0, 16_000, channels=3),
            16_000,
            {},
            "MAX_CHANNELS",
            "media_audio_too_many_channels",
        ),
    ],
)
def test_limits(
    audio: np.ndarray, rate: int, limits: dict[str, float], message: str, reason: str
) -> None:
    data = _encode(audio, rate, "WAV", "PCM_16")
    bounded = AudioLimits(**{**LIMITS.__dict__, **limits})
    with pytest.raises(LimitExceeded, match=message) as info:
        decode_all(data, bounded)
    # The message starts with the media reason code the pipeline dead-letters with.
    assert media_reason(str(info.value)) == reason


def test_nan_samples_are_refused() -> None:
    audio = _tone(1.0, 16_000)
    audio[100] = np.nan
    data = _encode(audio, 16_000, "WAV", "FLOAT")
    with pytest.raises(AudioDecodeError, match="NaN"):
        decode_all(data, LIMITS)
