"""Process entry of the audio safety service: the template's server
(crossguard.core.serving.server) over the AudioModel, AudioClassifier and the audio part parser.

`python -m crossguard.audio` runs `main()`; see crossguard.core.serving.server for logs,
telemetry, health, drain on SIGTERM and server processes (CROSSGUARD_AUDIO_PROCESSES).
"""

from __future__ import annotations

from crossguard.audio.model import AudioAnalysis, AudioInput, AudioModel
from crossguard.audio.service import AudioClassifier
from crossguard.audio.servicer import parse_parts
from crossguard.audio.settings import AudioServerSettings
from crossguard.core.model_contract import Model
from crossguard.core.model_repository import ModelRepository
from crossguard.core.serving import server as serving

SERVICE = "crossguard-audio"


def build_model(settings: AudioServerSettings) -> Model[AudioInput, AudioAnalysis]:
    """The AudioModel over the configured model repository, with the text model it scores
    transcripts with (in process), neither loaded yet. Whisper gets this process's CPUs
    divided among the batch workers unless CROSSGUARD_AUDIO_WHISPER_THREADS is set."""
    from crossguard.text.model import TextModel

    threads = serving.intra_op_threads(settings)
    model_settings = settings.model.model_copy(update={"onnx_intra_op_threads": threads})
    audio = settings.service
    if not audio.whisper_threads:
        # This process's CPUs shared by its batch workers (CROSSGUARD_ONNX_INTRA_OP_THREADS
        # sizes the onnxruntime sessions only: the VAD and text models are small next to it).
        whisper_threads = serving.default_intra_op_threads(
            audio.batch_workers, serving.cpus_per_process(settings)
        )
        audio = audio.model_copy(update={"whisper_threads": whisper_threads})
    repository = ModelRepository(model_settings.model_repository)
    text = TextModel(repository, model_settings, english_encoder=audio.english_encoder)
    return AudioModel(text, audio, model_settings, repository, owns_text_model=True)


def make_classifier(
    model: Model[AudioInput, AudioAnalysis], settings: AudioServerSettings
) -> AudioClassifier:
    return AudioClassifier(model, settings.service)


APP = serving.ClassifierApp(
    service=SERVICE,
    settings=AudioServerSettings,
    build_model=build_model,
    make_classifier=make_classifier,
    parse_parts=parse_parts,
)


def main() -> None:
    serving.main(APP)
