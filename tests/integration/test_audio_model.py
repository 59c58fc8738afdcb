"""The audio model with the real weights (Silero VAD, Whisper base, the text models) on speech
synthesised with flite and sounds made with sox; the event tagger with a tiny random ONNX model
built here."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crossguard.audio.decode import AudioDecodeError
from crossguard.audio.model import AudioModel
from crossguard.audio.settings import AudioServiceSettings
from crossguard.audio.tagger import EventTagger
from crossguard.core.errors import InvalidInput, LimitExceeded
from crossguard.core.model_repository import ModelRepository
from crossguard.core.settings import ModelSettings
from crossguard.core.taxonomy import Category
from crossguard.models.speech_synth import concat_wav, flite_wav, silence_wav, sox_sound
from crossguard.text.model import TextModel

pytestmark = pytest.mark.integration

ABUSIVE = "I will find you and kill you, you worthless piece of garbage."
BENIGN = "Thanks for the lovely dinner, see you at the picnic on Sunday."


def _settings(repo: ModelRepository, **extra: object) -> tuple[AudioServiceSettings, ModelSettings]:
    audio = AudioServiceSettings(
        # Small windows: every test also runs the window-by-window path.
        window_seconds=2.0,
        whisper_threads=2,
        **extra,  # type: ignore[arg-type]
    )
    return audio, ModelSettings(model_repository=repo.root, onnx_providers="CPUExecutionProvider")


@pytest.fixture(scope="module")
def text_model(model_repository: ModelRepository) -> TextModel:
    model = TextModel(
        model_repository,
        ModelSettings(
            model_repository=model_repository.root, onnx_providers="CPUExecutionProvider"
        ),
    )
    model.load()
    return model


@pytest.fixture(scope="module")
def audio_model(model_repository: ModelRepository, text_model: TextModel) -> Iterator[AudioModel]:
    settings, model_settings = _settings(model_repository)
    model = AudioModel(text_model, settings, model_settings, model_repository)
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="module")
def spoken() -> dict[str, bytes]:
    """2 s silence, the abusive sentence, 2 s silence, the benign one (16 kHz WAV) and each
    sentence alone."""
    abusive, benign = flite_wav(ABUSIVE), flite_wav(BENIGN)
    return {
        "abusive": abusive,
        "benign": benign,
        "mixed": concat_wav([silence_wav(2.0), abusive, silence_wav(2.0), benign]),
    }


def test_abusive_sentence_is_flagged_with_its_time_range(
    audio_model: AudioModel, spoken: dict[str, bytes]
) -> None:
    analysis = audio_model.analyze("a1", spoken["mixed"])
    assert analysis.language == "en"
    assert [round(s.start) for s in analysis.segments][:1] == [2]
    flagged = {e.category for e in analysis.evidence}
    assert flagged & {Category.VIOLENCE, Category.HARASSMENT_THREATENING, Category.HARASSMENT}
    abusive_end = 2.0 + 3.9  # flite speaks the sentence in ~3.8 s
    for e in analysis.evidence:
        assert e.part_id == "a1"
        # The flagged range is the abusive sentence (with the VAD padding), not the benign one.
        assert 1.6 <= e.start <= 2.3, e
        assert abusive_end - 0.8 <= e.end <= abusive_end + 0.8, e
        assert "kill you" in e.text.lower()
    assert analysis.scores[Category.VIOLENCE] >= audio_model.thresholds[Category.VIOLENCE]


def test_benign_sentence_is_not_flagged(audio_model: AudioModel, spoken: dict[str, bytes]) -> None:
    analysis = audio_model.analyze("b1", spoken["benign"])
    assert "picnic" in analysis.transcript.lower()
    assert analysis.evidence == []
    thresholds = audio_model.thresholds
    assert all(score < thresholds[cat] for cat, score in analysis.scores.items()), analysis.scores


@pytest.mark.parametrize("kind", ["white-noise", "tone-440", "sweep", "chord"])
def test_non_speech_gives_no_transcript(audio_model: AudioModel, kind: str) -> None:
    analysis = audio_model.analyze("n1", sox_sound(kind, seconds=4.0))
    assert analysis.segments == []
    assert analysis.speech_seconds == 0.0
    assert analysis.evidence == []
    assert analysis.language == ""
    assert set(analysis.scores.values()) == {0.0}


def test_speech_after_long_silence_keeps_its_time(
    audio_model: AudioModel, spoken: dict[str, bytes]
) -> None:
    # 31 s of silence (more than a Whisper window, many decode windows) before the sentence.
    data = concat_wav([silence_wav(31.0), spoken["abusive"]])
    analysis = audio_model.analyze("late", data)
    assert analysis.segments, "speech after the silence was not transcribed"
    assert 30.6 <= analysis.segments[0].start <= 31.3
    assert analysis.evidence and all(e.start >= 30.6 for e in analysis.evidence)


def test_corrupted_file_gets_a_clear_error(
    audio_model: AudioModel, spoken: dict[str, bytes]
) -> None:
    with pytest.raises(AudioDecodeError, match="cannot decode audio") as err:
        audio_model.analyze("bad", b"\x00\x01garbage" * 500)
    assert isinstance(err.value, InvalidInput)
    header_only = spoken["benign"][:44] + b"\xff" * 10
    # A header with a few bytes of samples: a clear domain error, or almost nothing (no speech).
    with contextlib.suppress(InvalidInput):
        assert audio_model.analyze("short", header_only).segments == []


def test_limits_are_settings(
    model_repository: ModelRepository, text_model: TextModel, spoken: dict[str, bytes]
) -> None:
    settings, model_settings = _settings(model_repository, max_seconds=2.0)
    model = AudioModel(text_model, settings, model_settings, model_repository)
    model.load()
    with pytest.raises(LimitExceeded, match="CROSSGUARD_AUDIO_MAX_SECONDS"):
        model.analyze("long", spoken["mixed"])


def _tiny_tagger(path: Path, labels: list[str], seed: int = 0) -> None:
    """A randomly initialised event tagger: frame energy features -> linear -> sigmoid."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    frames = 64
    weight = rng.normal(size=(frames, len(labels))).astype(np.float32)
    bias = rng.normal(size=(len(labels),)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["waveform", "shape"], ["framed"]),
        helper.make_node("Abs", ["framed"], ["magnitude"]),
        helper.make_node("ReduceMean", ["magnitude", "axes"], ["energy"], keepdims=0),
        helper.make_node("MatMul", ["energy", "weight"], ["logits0"]),
        helper.make_node("Add", ["logits0", "bias"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_tagger",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(labels)])],
        initializer=[
            numpy_helper.from_array(np.array([0, frames, -1], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes"),
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())


def test_tiny_event_tagger_runs_through_the_audio_model(
    model_repository: ModelRepository,
    text_model: TextModel,
    tmp_path: Path,
) -> None:
    tagger_path = tmp_path / "tagger.onnx"
    labels_path = tmp_path / "labels.txt"
    labels = ["Speech", "Gunshot, gunfire", "Screaming", "Explosion"]
    _tiny_tagger(tagger_path, labels)
    labels_path.write_text(
        "Speech\nGunshot, gunfire\tviolence\nScreaming\tviolence\nExplosion\tviolence/graphic\n"
    )
    settings, model_settings = _settings(
        model_repository,
        tagger_model=tagger_path,
        tagger_labels=labels_path,
        tagger_window_seconds=1.0,
        tagger_threshold=0.0,  # every window is an event: the path is exercised end to end
    )
    model = AudioModel(text_model, settings, model_settings, model_repository)
    model.load()
    assert any(name == "tagger:tagger" for name, _ in model.model_infos)
    assert Category.VIOLENCE_GRAPHIC in model.categories

    analysis = model.analyze("t1", sox_sound("white-noise", seconds=3.0))
    assert analysis.segments == []
    # 3 windows of 1 s, 3 mapped labels each.
    assert len(analysis.events) == 9
    assert [(e.start, e.end) for e in analysis.events[::3]] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]
    direct = EventTagger(tagger_path, labels_path, model_settings, window_seconds=1.0)
    assert analysis.scores[Category.VIOLENCE] > 0.0
    assert {e.label for e in analysis.events} == {"Gunshot, gunfire", "Screaming", "Explosion"}
    assert all(e.text.startswith("event: ") for e in analysis.evidence)
    # The stream's scores are the tagger's own on the same windows.
    from crossguard.audio.decode import decode_all

    _, audio = decode_all(sox_sound("white-noise", seconds=3.0), model.limits)
    assert direct.score_windows([audio[:16_000]]).shape == (1, 4)


def test_whisper_auto_falls_back_to_the_cpu_when_cuda_fails(
    model_repository: ModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auto` on a node whose CUDA is unusable (here: no driver; on a GPU node: CTranslate2
    without CUDA 12's cuBLAS) serves on the CPU; an explicit `cuda` still fails loudly."""
    import ctranslate2

    from crossguard.audio import asr

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("CUDA works on this machine: nothing to fall back from")
    entry = model_repository.get("whisper-tiny-en")
    monkeypatch.setattr(asr, "resolve_device", lambda requested: "cuda")
    whisper = asr.WhisperTranscriber(entry, asr.WhisperOptions(device="auto", threads=1))
    assert (whisper.device, whisper.compute_type) == ("cpu", "int8")
    assert whisper.version.endswith("-int8")
    with pytest.raises(RuntimeError, match="CUDA"):
        asr.WhisperTranscriber(entry, asr.WhisperOptions(device="cuda", threads=1))
