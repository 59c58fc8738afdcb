"""`crossguard bench audio`: real-time factor of the audio path on a 30-second spoken clip, at 1
and N concurrent streams, in process (the raw engine: AudioModel.analyze, decode → VAD →
Whisper → text models) and through the gRPC service (`python -m crossguard.audio` on a loopback
port, N closed-loop clients).

RTF = seconds spent on a clip / the clip's seconds (lower is faster; 1.0 is real time), the mean
over the clips of a run; "audio s/s" = seconds of audio analysed per wall-clock second over all
streams. Speed only: a table, never pass/fail.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings


@dataclass(frozen=True)
class RtfRow:
    path: str  # "engine" or "service"
    streams: int
    clips: int
    clip_seconds: float
    mean_rtf: float
    audio_per_second: float
    wall_seconds: float


def bench_clip(seconds: float = 30.0) -> bytes:
    """A `seconds`-long 16 kHz mono WAV of flite speech."""
    from crossguard.models.audio_eval import CLEAN_SENTENCES
    from crossguard.models.speech_synth import concat_wav, flite_wav, sox_convert

    parts: list[bytes] = []
    total = 0.0
    i = 0
    while total < seconds + 1.0:
        data = flite_wav(CLEAN_SENTENCES[i % 8])  # the first eight: ordinary speech
        parts.append(data)
        total += _wav_seconds(data)
        i += 1
    return sox_convert(concat_wav(parts), "wav", effects=("trim", "0", str(seconds)))


def _wav_seconds(data: bytes) -> float:
    import io

    import soundfile

    info = soundfile.info(io.BytesIO(data))
    return float(info.frames) / float(info.samplerate)


def _run_streams(
    streams: int, clips_per_stream: int, one: Callable[[], None]
) -> tuple[list[float], float]:
    """`streams` threads each calling `one` `clips_per_stream` times; per-call seconds, wall."""
    durations: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(clips_per_stream):
            t0 = time.perf_counter()
            one()
            took = time.perf_counter() - t0
            with lock:
                durations.append(took)

    threads = [threading.Thread(target=worker) for _ in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return durations, time.perf_counter() - t0


def _row(path: str, streams: int, clip_s: float, durations: list[float], wall: float) -> RtfRow:
    return RtfRow(
        path=path,
        streams=streams,
        clips=len(durations),
        clip_seconds=clip_s,
        mean_rtf=sum(durations) / len(durations) / clip_s,
        audio_per_second=clip_s * len(durations) / wall,
        wall_seconds=wall,
    )


def measure_engine(
    repository: ModelRepository,
    clip: bytes,
    stream_counts: Sequence[int],
    clips_per_stream: int,
    whisper_model: str,
) -> list[RtfRow]:
    """The AudioModel in this process; for N streams a model with N Whisper workers of
    CPUs / N threads each (what the service runs with CROSSGUARD_AUDIO_BATCH_WORKERS=N)."""
    from crossguard.audio.model import AudioModel
    from crossguard.audio.settings import AudioServiceSettings
    from crossguard.core.cpus import available_cpus
    from crossguard.text.model import TextModel

    model_settings = ModelSettings(model_repository=repository.root, onnx_intra_op_threads=1)
    text = TextModel(repository, model_settings)
    text.load()
    clip_s = _wav_seconds(clip)
    rows = []
    for n in stream_counts:
        settings = AudioServiceSettings(
            whisper_model=whisper_model,
            batch_workers=n,
            whisper_threads=max(1, available_cpus() // n),
        )
        model = AudioModel(text, settings, model_settings, repository)
        model.load()
        model.analyze("warmup", clip)

        def one(model: AudioModel = model) -> None:
            model.analyze("b", clip)

        durations, wall = _run_streams(n, clips_per_stream, one)
        rows.append(_row("engine", n, clip_s, durations, wall))
        model.close()
    return rows


def measure_service(
    repository: ModelRepository,
    clip: bytes,
    stream_counts: Sequence[int],
    clips_per_stream: int,
    whisper_model: str,
) -> list[RtfRow]:
    """`python -m crossguard.audio` with N batch workers (its own sizing: CPUs / N Whisper
    threads each), N gRPC clients."""
    import grpc

    from crossguard.bench.load import start_server
    from crossguard.core.serving.servicer import CLASSIFY
    from crossguard.v1 import classifier_pb2, content_pb2

    request = classifier_pb2.ClassifyRequest(
        content_id="bench",
        parts=[
            content_pb2.ContentPart(
                part_id="a", media=content_pb2.Media(mime_type="audio/wav", inline_data=clip)
            )
        ],
    ).SerializeToString()
    clip_s = _wav_seconds(clip)

    async def drive(port: int, n: int) -> tuple[list[float], float]:
        channels = [
            grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(n)
        ]
        durations: list[float] = []

        async def client(k: int) -> None:
            call = channels[k].unary_unary(CLASSIFY)
            for _ in range(clips_per_stream):
                t0 = time.perf_counter()
                await call(request, timeout=600)
                durations.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        try:
            await asyncio.gather(*(client(k) for k in range(n)))
        finally:
            for ch in channels:
                await ch.close()
        return durations, time.perf_counter() - t0

    rows = []
    for n in stream_counts:
        server = start_server(
            "audio",
            "crossguard.audio",
            {
                "CROSSGUARD_MODEL_REPOSITORY": str(repository.root),
                "CROSSGUARD_AUDIO_WHISPER_MODEL": whisper_model,
                "CROSSGUARD_AUDIO_BATCH_WORKERS": str(n),
                "CROSSGUARD_ONNX_INTRA_OP_THREADS": "1",
            },
            timeout=180,
        )
        try:
            asyncio.run(drive(server.port, 1))  # warm-up
            durations, wall = asyncio.run(drive(server.port, n))
            rows.append(_row("service", n, clip_s, durations, wall))
        finally:
            server.stop()
    return rows


def run_audio_bench(
    root: Path,
    *,
    streams: int = 2,
    clips_per_stream: int = 1,
    whisper_model: str = "whisper-base",
    out: Callable[[str], None] = print,
) -> list[RtfRow]:
    repository = ModelRepository(root)
    clip = bench_clip()
    counts = sorted({1, streams})
    out(f"clip: {_wav_seconds(clip):.1f} s of flite speech; {whisper_model}; streams {counts}")
    rows = measure_engine(repository, clip, counts, clips_per_stream, whisper_model)
    rows += measure_service(repository, clip, counts, clips_per_stream, whisper_model)
    out(format_rows(rows, whisper_model))
    return rows


def format_rows(rows: Sequence[RtfRow], whisper_model: str) -> str:
    from crossguard.core.cpus import available_cpus

    lines = [
        f"audio path RTF ({whisper_model}, {available_cpus()} CPUs; lower is faster)",
        f"{'path':<8} {'streams':>7} {'clips':>5} {'RTF':>6} {'audio s/s':>9} {'wall s':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.path:<8} {r.streams:>7} {r.clips:>5} {r.mean_rtf:>6.3f} "
            f"{r.audio_per_second:>9.2f} {r.wall_seconds:>7.1f}"
        )
    return "\n".join(lines)
