"""Shared fixtures. The model repository is built once per test session (or reused from
CROSSGUARD_TEST_MODEL_REPOSITORY / ./models when already built there)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crossguard.core.model_repository import ModelRepository

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_repository(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    """The default text model repository, built from installed packages (idempotent)."""
    from crossguard.models.build import build_default_repository

    root_env = os.environ.get("CROSSGUARD_TEST_MODEL_REPOSITORY")
    root = Path(root_env) if root_env else REPO_ROOT / "models"
    build_default_repository(root)
    return ModelRepository(root)


class MetricsCapture:
    """An OpenTelemetry meter provider with an in-memory reader: hand `meter()` to the code
    under test, then read what it recorded with `points()`."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def meter(self, name: str = "test") -> Any:
        return self.provider.get_meter(name)

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Metric name → (attributes, value) per data point; a histogram's value is its count,
        and its sum is under the name + ".sum"."""
        out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        assert data is not None
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        attributes = dict(p.attributes or {})
                        value = getattr(p, "value", None)
                        if value is None:  # a histogram
                            value = p.count
                            out.setdefault(metric.name + ".sum", []).append((attributes, p.sum))
                        out.setdefault(metric.name, []).append((attributes, value))
        return out


@pytest.fixture
def metrics_capture() -> Iterator[Callable[[], MetricsCapture]]:
    """Factory of MetricsCapture; every provider made is shut down after the test."""
    made: list[MetricsCapture] = []

    def make() -> MetricsCapture:
        made.append(MetricsCapture())
        return made[-1]

    yield make
    for capture in made:
        capture.provider.shutdown()
