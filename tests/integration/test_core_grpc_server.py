"""GrpcServer with a tiny Classifier servicer on a random loopback port: health, reflection,
domain error mapping, generic INTERNAL for unexpected errors, graceful stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crossguard.core.errors import InvalidInput, ModelError, NotReady, Overloaded
from crossguard.core.grpc_server import GrpcServer, ServiceRegistration
from crossguard.core.settings import GrpcServerSettings
from crossguard.v1 import classifier_pb2, classifier_pb2_grpc

pytestmark = pytest.mark.integration

SERVICE = classifier_pb2.DESCRIPTOR.services_by_name["ClassifierService"].full_name

ERRORS: dict[str, Exception] = {
    "invalid": InvalidInput("part 'a' is too long: 5 > 4"),
    "not-ready": NotReady("model loading"),
    "overloaded": Overloaded("queue is full"),
    "model": ModelError("model x missing"),
    "boom": RuntimeError("secret detail /var/lib/db password=hunter2"),
}


class TinyServicer(classifier_pb2_grpc.ClassifierServiceServicer):
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def Classify(
        self, request: classifier_pb2.ClassifyRequest, context: Any
    ) -> classifier_pb2.ClassifyResponse:
        if request.content_id in ERRORS:
            raise ERRORS[request.content_id]
        if request.content_id == "slow":
            await self.release.wait()
        return classifier_pb2.ClassifyResponse()


ServerFactory = Callable[..., Awaitable[tuple[GrpcServer, grpc.aio.Channel, list[str]]]]


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    made: list[tuple[GrpcServer, grpc.aio.Channel]] = []

    async def make(
        servicer: TinyServicer | None = None, grace: float = 1.0
    ) -> tuple[GrpcServer, grpc.aio.Channel, list[str]]:
        servicer = servicer or TinyServicer()
        closed: list[str] = []

        async def close_async() -> None:
            closed.append("async")

        registration = ServiceRegistration(
            SERVICE,
            lambda s: classifier_pb2_grpc.add_ClassifierServiceServicer_to_server(servicer, s),
        )
        server = GrpcServer(
            GrpcServerSettings(host="127.0.0.1", port=0, grace_seconds=grace),
            [registration],
            on_close=[lambda: closed.append("sync"), close_async],
        )
        port = await server.start()
        assert port > 0
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        made.append((server, channel))
        return server, channel, closed

    yield make
    for server, channel in made:
        await channel.close()
        await server.stop(0)


async def test_health_serving_for_server_and_service(make_server: ServerFactory) -> None:
    _, channel, _ = await make_server()
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        resp = await stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stop_goes_not_serving_then_drains_and_closes(make_server: ServerFactory) -> None:
    servicer = TinyServicer()
    server, channel, closed = await make_server(servicer, grace=5.0)
    health = health_pb2_grpc.HealthStub(channel)
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE))
    first = await watch.read()
    assert first.status == health_pb2.HealthCheckResponse.SERVING

    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
    slow = classifier_pb2.ClassifyRequest(content_id="slow")
    in_flight = asyncio.ensure_future(stub.Classify(slow))
    await asyncio.sleep(0.2)
    stopping = asyncio.ensure_future(server.stop())
    update = await asyncio.wait_for(watch.read(), timeout=5)
    assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert closed == []  # models are closed only after the drain
    servicer.release.set()
    assert isinstance(await in_flight, classifier_pb2.ClassifyResponse)  # drained, not cut
    watch.cancel()
    await asyncio.wait_for(stopping, timeout=10)
    assert closed == ["sync", "async"]
    await server.wait()  # returns once stopped


@pytest.mark.parametrize(
    ("content_id", "code"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT),
        ("not-ready", grpc.StatusCode.UNAVAILABLE),
        ("overloaded", grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("model", grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
async def test_domain_errors_map_to_status_with_message(
    make_server: ServerFactory, content_id: str, code: grpc.StatusCode
) -> None:
    _, channel, _ = await make_server()
    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(classifier_pb2.ClassifyRequest(content_id=content_id))
    assert err.value.code() == code
    assert err.value.details() == str(ERRORS[content_id])


async def test_unexpected_error_is_generic_internal(
    make_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _, channel, _ = await make_server()
    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Classify(classifier_pb2.ClassifyRequest(content_id="boom"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    details = err.value.details() or ""
    assert details.startswith("internal error (ref ")
    assert "secret" not in details and "hunter2" not in details
    # The operator can find the full error in the logs by the same reference.
    ref = details.removeprefix("internal error (ref ").rstrip(")")
    assert any(getattr(r, "error_ref", None) == ref for r in caplog.records)


async def test_success_path(make_server: ServerFactory) -> None:
    _, channel, _ = await make_server()
    stub = classifier_pb2_grpc.ClassifierServiceStub(channel)
    resp = await stub.Classify(classifier_pb2.ClassifyRequest(content_id="ok"))
    assert isinstance(resp, classifier_pb2.ClassifyResponse)


async def test_reflection_lists_services(make_server: ServerFactory) -> None:
    _, channel, _ = await make_server()
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names: set[str] = set()
    async for resp in stub.ServerReflectionInfo(requests()):
        names |= {s.name for s in resp.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


async def test_stop_is_idempotent(make_server: ServerFactory) -> None:
    server, _, closed = await make_server()
    await server.stop(0)
    await server.stop(0)
    assert closed == ["sync", "async"]
