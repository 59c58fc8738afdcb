"""Which gRPC calls get a server span (no I/O)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from crossguard.core.grpc_server import traced

pytestmark = pytest.mark.unit


class Details(NamedTuple):
    method: str
    invocation_metadata: tuple[tuple[str, str], ...] = ()


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("/crossguard.v1.ClassifierService/Classify", True),
        ("/crossguard.v1.ConsistencyService/Check", True),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", True),
        ("/grpc.health.v1.Health/Check", False),
        # Watch is a stream: the instrumentation's wrapper breaks the library's servicer.
        ("/grpc.health.v1.Health/Watch", False),
        ("/grpc.health.v1.HealthX/Check", True),
    ],
)
def test_everything_but_health_is_traced(method: str, expected: bool) -> None:
    assert traced(Details(method)) is expected
