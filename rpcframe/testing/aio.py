"""Testing asyncio services: a transport and a running server as async context managers.

They suit pytest-asyncio fixtures (and any other asyncio test runner)::

    import pytest_asyncio
    import rpcframe.testing.aio

    @pytest_asyncio.fixture
    async def transport():
        async with rpcframe.testing.aio.transport() as transport:
            yield transport

    @pytest_asyncio.fixture
    async def compute(transport):
        target = rpcframe.Target(topic="compute", server="host-1")
        async with rpcframe.testing.aio.server(transport, target, [ComputeEndpoint()]):
            yield rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic="compute"))

    @pytest.mark.asyncio
    async def test_reboot(compute):
        assert await compute.call({}, "reboot", instance="i-1") == "rebooting"

``fake://`` needs no broker; pass another URL to test against one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import aio
from rpcframe.target import Target

__all__ = ["server", "transport"]


@contextlib.asynccontextmanager
async def transport(
    url: str = "fake://", conf: cfg.ConfigOpts | None = None, **kwargs: Any
) -> AsyncIterator[aio.AsyncTransport]:
    """An asyncio RPC transport (a fresh ConfigOpts unless given one), cleaned up after."""
    if conf is None:
        conf = cfg.ConfigOpts()
        conf([])
    built = aio.get_rpc_transport(conf, url, **kwargs)
    try:
        yield built
    finally:
        await built.cleanup()


@contextlib.asynccontextmanager
async def server(
    transport: aio.AsyncTransport, target: Target, endpoints: Sequence[Any], **kwargs: Any
) -> AsyncIterator[aio.AsyncRPCServer]:
    """A started asyncio RPC server, stopped and waited for after, even when the test fails."""
    built = aio.get_rpc_server(transport, target, endpoints, **kwargs)
    await built.start()
    try:
        yield built
    finally:
        await built.stop()
        await built.wait()
