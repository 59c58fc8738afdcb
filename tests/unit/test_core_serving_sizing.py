"""How many server processes and onnxruntime threads a classifier service sizes itself to
(crossguard.core.serving.server, with the text service's settings)."""

from __future__ import annotations

import pytest

from crossguard.core.serving import server
from crossguard.core.settings import ModelSettings
from crossguard.text.settings import TextServerSettings, TextServiceSettings

pytestmark = pytest.mark.unit


def settings(processes: int = 0, threads: int = 0, workers: int = 1) -> TextServerSettings:
    return TextServerSettings(
        text=TextServiceSettings(processes=processes, batch_workers=workers),
        model=ModelSettings(onnx_intra_op_threads=threads),
    )


@pytest.fixture
def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "available_cpus", lambda: 8)
    monkeypatch.setattr(server, "uses_cuda", lambda _settings: False)


@pytest.mark.usefixtures("eight_cpus")
def test_cpu_auto_is_one_process_per_cpu_or_per_thread_group() -> None:
    assert server.server_processes(settings()) == 8
    assert server.server_processes(settings(threads=2)) == 4
    assert server.cpus_per_process(settings()) == 1
    assert server.default_intra_op_threads(1, server.cpus_per_process(settings())) == 1


@pytest.mark.usefixtures("eight_cpus")
def test_an_explicit_count_wins() -> None:
    assert server.server_processes(settings(processes=3)) == 3
    assert server.cpus_per_process(settings(processes=2)) == 4
    assert server.default_intra_op_threads(2, server.cpus_per_process(settings(processes=2))) == 2


def test_cuda_auto_is_a_few_front_ends_per_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "uses_cuda", lambda _settings: True)
    for cpus, processes in ((2, 1), (8, 2), (16, 4), (64, 8)):
        monkeypatch.setattr(server, "available_cpus", lambda cpus=cpus: cpus)
        assert server.server_processes(settings()) == processes
    gpu = TextServerSettings(text=TextServiceSettings(gpu_processes=3))
    assert server.server_processes(gpu) == 3
    assert server.server_processes(settings(processes=5)) == 5  # an explicit count wins


def test_cuda_serves_with_the_gpu_batch_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from crossguard.text.server import build_model

    plain = settings()
    monkeypatch.setattr(server, "uses_cuda", lambda _settings: False)
    assert server.for_device(plain) is plain
    assert build_model(plain).sub_batch == 16  # type: ignore[attr-defined]

    monkeypatch.setattr(server, "uses_cuda", lambda _settings: True)
    on_gpu = server.for_device(plain)
    assert (on_gpu.text.batch_max, on_gpu.text.batch_workers) == (256, 2)
    assert (plain.text.batch_max, plain.text.batch_workers) == (32, 1)  # not changed
    model = build_model(on_gpu)
    assert (model.sub_batch, model.max_padding) == (128, 0.5)  # type: ignore[attr-defined]
