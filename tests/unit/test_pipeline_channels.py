"""The shared channel pool (core.grpc_channels: the pipeline's and the consistency service's):
several connections per endpoint, handed out in turn."""

from __future__ import annotations

import pytest

from crossguard.core.grpc_channels import ChannelPool

pytestmark = pytest.mark.unit

SERVICE = "crossguard.v1.ClassifierService"


async def test_calls_rotate_over_the_endpoint_connections() -> None:
    pool = ChannelPool(max_message_bytes=1 << 20, initial_backoff_ms=100, connections=3)
    try:
        got, other = [], []
        for _ in range(6):  # calls to two endpoints interleave, as text and consistency do
            got.append(pool.channel("127.0.0.1:1", SERVICE, 2))
            other.append(pool.channel("127.0.0.1:2", SERVICE, 2))
        assert len({id(c) for c in got}) == 3 and len({id(c) for c in other}) == 3
        assert got[:3] == got[3:]
        # Another endpoint gets its own connections.
        assert not {id(c) for c in got} & {id(c) for c in other}
    finally:
        await pool.close()


async def test_one_connection_by_default() -> None:
    pool = ChannelPool(max_message_bytes=1 << 20, initial_backoff_ms=100)
    try:
        assert pool.channel("127.0.0.1:1", SERVICE, 2) is pool.channel("127.0.0.1:1", SERVICE, 2)
    finally:
        await pool.close()
