"""The driver contract suite on ZeroMQ: the static name service, and Redis (127.0.0.1:6379)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpcframe import green
from rpcframe.testing.contract import DriverContract
from rpcframe.testing.contract_aio import AsyncDriverContract
from tests.conftest import require_service

#: A fixed port for the static name service: this process listens there.
STATIC_PORT = 47913
#: The asyncio driver's: its node is not the thread driver's, and listens apart.
ASYNC_STATIC_PORT = 47914


class TestZmqDriver(DriverContract):
    url = f"zmq://127.0.0.1:{STATIC_PORT}/?rpc_zmq_host=127.0.0.1"


class TestZmqDriverOnRedis(DriverContract):
    url = (
        "zmq+redis://127.0.0.1:6379/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
        "&key_prefix=rpcframe.contract"
    )

    @pytest.fixture(autouse=True)
    def _redis(self) -> Iterator[None]:
        require_service("Redis", "127.0.0.1", 6379)
        yield


if green.patched():  # python -m tests.patched (tox -e eventlet)

    class TestZmqDriverOnTheEventletExecutor(TestZmqDriver):
        """The suite again, servers and listeners on green threads."""

        executor = "eventlet"


if not green.patched():  # asyncio drivers do not run in a monkey-patched process

    class TestAsyncZmqDriver(AsyncDriverContract):
        url = f"zmq://127.0.0.1:{ASYNC_STATIC_PORT}/?rpc_zmq_host=127.0.0.1"

    class TestAsyncZmqDriverOnRedis(AsyncDriverContract):
        url = TestZmqDriverOnRedis.url

        @pytest.fixture(autouse=True)
        def _redis(self) -> Iterator[None]:
            require_service("Redis", "127.0.0.1", 6379)
            yield
