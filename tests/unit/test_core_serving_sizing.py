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


def test_cuda_auto_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "available_cpus", lambda: 8)
    monkeypatch.setattr(server, "uses_cuda", lambda _settings: True)
    assert server.server_processes(settings()) == 1
