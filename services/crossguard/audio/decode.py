"""Decoding of encoded audio (WAV, FLAC, OGG Vorbis/Opus, MP3) to 16 kHz mono float32, window by
window, against explicit limits.

libsndfile (through soundfile) decodes all four formats; soxr resamples as a stream, so a long
file never exists decoded in memory at once. Every limit breach is an AudioLimitExceeded
(LimitExceeded) and every file libsndfile cannot read (corrupt, truncated, unknown format) an
AudioDecodeError, both InvalidInput and media errors (core.media.errors): the message starts with
the reason code (media_audio_too_long, media_undecodable, ...), so the caller gets a clear
message and the pipeline dead-letters the item with that reason.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossguard.core.errors import LimitExceeded
from crossguard.core.media import MediaError, MediaReason, MediaUndecodable

SAMPLE_RATE = 16_000
# libsndfile major formats accepted (others it reads, e.g. AIFF or raw, are refused).
FORMATS: dict[str, str] = {"WAV": "WAV", "WAVEX": "WAV", "FLAC": "FLAC", "OGG": "OGG", "MP3": "MP3"}


class AudioDecodeError(MediaUndecodable):
    """The bytes are not a readable audio file of a supported format (corrupt, truncated,
    unknown or unsupported format): reason code media_undecodable, so the pipeline sends the
    item to the dead-letter topic with it (docs/media.md)."""


class AudioLimitExceeded(MediaError, LimitExceeded):
    """An audio part over one of the audio service's limits (INVALID_ARGUMENT); `reason` is the
    dead-letter reason code."""

    reason = MediaReason.AUDIO_TOO_LARGE


class AudioTooLarge(AudioLimitExceeded):
    """More encoded bytes than CROSSGUARD_AUDIO_MAX_BYTES."""

    reason = MediaReason.AUDIO_TOO_LARGE


class AudioTooLong(AudioLimitExceeded):
    """Longer than CROSSGUARD_AUDIO_MAX_SECONDS (declared in the header, or decoded)."""

    reason = MediaReason.AUDIO_TOO_LONG


class AudioSampleRateOutOfRange(AudioLimitExceeded):
    """A sample rate outside CROSSGUARD_AUDIO_MIN_SAMPLE_RATE..._MAX_SAMPLE_RATE."""

    reason = MediaReason.AUDIO_SAMPLE_RATE


class AudioTooManyChannels(AudioLimitExceeded):
    """More channels than CROSSGUARD_AUDIO_MAX_CHANNELS (or none)."""

    reason = MediaReason.AUDIO_TOO_MANY_CHANNELS


@dataclass(frozen=True)
class AudioLimits:
    max_bytes: int
    max_seconds: float
    min_sample_rate: int
    max_sample_rate: int
    max_channels: int
    window_seconds: float


@dataclass(frozen=True)
class AudioInfo:
    format: str  # WAV, FLAC, OGG, MP3
    subtype: str  # e.g. PCM_16, VORBIS, OPUS, MPEG_LAYER_III
    sample_rate: int
    channels: int
    # From the header; decoding counts again (a header can lie, MP3 lengths are estimates).
    declared_seconds: float


def _open(data: bytes) -> Any:
    import soundfile

    try:
        return soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioDecodeError(
            f"cannot decode audio: {exc} (supported: WAV, FLAC, OGG Vorbis/Opus, MP3)"
        ) from exc


def _check_header(sf: Any, limits: AudioLimits) -> AudioInfo:
    fmt = str(sf.format)
    if fmt not in FORMATS:
        raise AudioDecodeError(
            f"audio format {fmt} is not supported (supported: WAV, FLAC, OGG Vorbis/Opus, MP3)"
        )
    rate = int(sf.samplerate)
    channels = int(sf.channels)
    frames = int(sf.frames)
    if not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise AudioSampleRateOutOfRange(
            f"audio sample rate {rate} Hz is outside {limits.min_sample_rate}-"
            f"{limits.max_sample_rate} Hz (CROSSGUARD_AUDIO_MIN_SAMPLE_RATE / _MAX_SAMPLE_RATE)"
        )
    if not 1 <= channels <= limits.max_channels:
        raise AudioTooManyChannels(
            f"audio has {channels} channels; the limit is {limits.max_channels} "
            "(CROSSGUARD_AUDIO_MAX_CHANNELS)"
        )
    seconds = frames / rate
    if seconds > limits.max_seconds:
        raise AudioTooLong(
            f"audio lasts {seconds:.1f} s; the limit is {limits.max_seconds:g} s "
            "(CROSSGUARD_AUDIO_MAX_SECONDS)"
        )
    return AudioInfo(FORMATS[fmt], str(sf.subtype), rate, channels, seconds)


def decode_windows(data: bytes, limits: AudioLimits) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """(header info, iterator of 16 kHz mono float32 windows of about limits.window_seconds).

    The header is checked before anything is decoded; the iterator raises AudioDecodeError when
    the stream breaks part way and AudioTooLong when more audio decodes than max_seconds.
    """
    if len(data) > limits.max_bytes:
        raise AudioTooLarge(
            f"audio part has {len(data)} bytes; the limit is {limits.max_bytes} "
            "(CROSSGUARD_AUDIO_MAX_BYTES)"
        )
    if not data:
        raise AudioDecodeError("audio part is empty")
    sf = _open(data)
    try:
        info = _check_header(sf, limits)
    except BaseException:
        sf.close()
        raise
    return info, _windows(sf, info, limits)


def _windows(sf: Any, info: AudioInfo, limits: AudioLimits) -> Iterator[np.ndarray]:
    import soundfile
    import soxr

    block = max(1, int(limits.window_seconds * info.sample_rate))
    max_frames = int(limits.max_seconds * info.sample_rate) + 1
    resampler = (
        None
        if info.sample_rate == SAMPLE_RATE
        else soxr.ResampleStream(info.sample_rate, SAMPLE_RATE, 1, dtype="float32")
    )
    read = 0
    try:
        while True:
            try:
                raw = sf.read(block, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise AudioDecodeError(
                    f"audio stream is corrupt after {read / info.sample_rate:.1f} s: {exc}"
                ) from exc
            n = len(raw)
            last = n < block
            read += n
            if read > max_frames:
                raise AudioTooLong(
                    f"audio decodes to more than {limits.max_seconds:g} s "
                    "(CROSSGUARD_AUDIO_MAX_SECONDS)"
                )
            mono = raw.mean(axis=1, dtype=np.float32) if info.channels > 1 else raw[:, 0]
            if not np.all(np.isfinite(mono)):
                raise AudioDecodeError("audio contains NaN or infinite samples")
            out = mono if resampler is None else resampler.resample_chunk(mono, last=last)
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                break
    finally:
        sf.close()
    if read == 0:
        raise AudioDecodeError("audio part holds no samples")


def decode_all(data: bytes, limits: AudioLimits) -> tuple[AudioInfo, np.ndarray]:
    """The whole part as one 16 kHz mono array (for short clips, tests and evaluation)."""
    info, windows = decode_windows(data, limits)
    parts = list(windows)
    return info, np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
