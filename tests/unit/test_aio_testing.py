"""rpcframe.testing.aio in pytest-asyncio fixtures, as a service's own tests would use it."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

import rpcframe
import rpcframe.aio
import rpcframe.testing.aio


class Compute:
    def __init__(self) -> None:
        self.rebooted: list[str] = []

    async def reboot(self, ctxt, instance):
        self.rebooted.append(instance)
        return "rebooting"


@pytest_asyncio.fixture
async def transport():
    async with rpcframe.testing.aio.transport() as transport:
        yield transport


@pytest_asyncio.fixture
async def compute(transport):
    topic = f"compute_{uuid.uuid4().hex[:8]}"
    endpoint = Compute()
    target = rpcframe.Target(topic=topic, server="host-1")
    async with rpcframe.testing.aio.server(transport, target, [endpoint]) as server:
        client = rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
        yield client, endpoint, server


@pytest.mark.asyncio
async def test_a_service_test_calls_its_endpoint_through_the_fixtures(compute):
    client, endpoint, _ = compute
    assert await client.call({}, "reboot", instance="i-1") == "rebooting"
    assert endpoint.rebooted == ["i-1"]


@pytest.mark.asyncio
async def test_the_server_fixture_stops_the_server_when_the_block_ends(transport):
    target = rpcframe.Target(topic=f"short_{uuid.uuid4().hex[:8]}", server="h")
    async with rpcframe.testing.aio.server(transport, target, [Compute()]) as server:
        assert server._receiving is not None
    assert server._receiving is None and server._listener is None
