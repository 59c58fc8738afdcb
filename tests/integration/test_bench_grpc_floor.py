"""The bench's floor server (crossguard.bench.grpc_cost with CROSSGUARD_BENCH_GRPC_FLOOR=1): bare
grpc.aio on a real port, in one or several processes, answering the ClassifierService methods
with the constant model's response."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

from crossguard.bench.constant import SECONDS_PER_TEXT_VAR, constant_response
from crossguard.bench.grpc_cost import FLOOR_VAR
from crossguard.core.serving.servicer import CLASSIFY, CLASSIFY_STREAM
from crossguard.v1 import classifier_pb2, content_pb2

if TYPE_CHECKING:
    from conftest import GrpcServiceFactory

pytestmark = pytest.mark.integration


def _children(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()


@pytest.mark.parametrize("processes", [1, 2])
async def test_floor_answers_unary_and_stream_calls(
    start_grpc: GrpcServiceFactory, processes: int
) -> None:
    server = start_grpc(
        "floor",
        "crossguard.bench.grpc_cost",
        CROSSGUARD_TEXT_PROCESSES=str(processes),
        **{SECONDS_PER_TEXT_VAR: "0.001", FLOOR_VAR: "1"},
    )
    try:
        children = _children(server.pid)
        # Several processes: a supervisor with a child each (and multiprocessing's tracker).
        assert len(children) == (0 if processes == 1 else processes + 1)
        request = classifier_pb2.ClassifyRequest(
            content_id="c1", parts=[content_pb2.ContentPart(text="hello")]
        )
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            answer = await channel.unary_unary(CLASSIFY)(request.SerializeToString(), timeout=10)
            assert answer == constant_response()
            stream = channel.stream_stream(CLASSIFY_STREAM)(timeout=10)
            for k in range(3):
                request.content_id = f"s{k}"
                await stream.write(
                    classifier_pb2.ClassifyStreamRequest(request=request).SerializeToString()
                )
                message = classifier_pb2.ClassifyStreamResponse.FromString(await stream.read())
                assert message.content_id == f"s{k}"
                assert message.response.SerializeToString() == constant_response()
            await stream.done_writing()
            assert await stream.code() == grpc.StatusCode.OK
    finally:
        server.stop(timeout=10)
    assert not server.alive()
