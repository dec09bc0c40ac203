"""The driver contract suite on ZeroMQ: the static name service, and Redis (127.0.0.1:6379)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from rpcframe import green
from rpcframe.testing.contract import DriverContract
from rpcframe.testing.contract_aio import AsyncDriverContract
from tests.conftest import delete_redis_keys, require_service

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


#: Each run's own Redis keys: the streams of the notification store outlive its listeners.
STORE_PREFIX = f"rpcframe.contract.store.{uuid.uuid4().hex[:8]}"


class TestZmqDriverWithANotificationStore(DriverContract):
    """The suite with notifications kept in Redis streams: the durable cases run too."""

    url = (
        "zmq+redis://127.0.0.1:6379/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
        f"&key_prefix={STORE_PREFIX}&zmq_notification_store=redis"
    )

    @pytest.fixture(autouse=True)
    def _redis(self) -> Iterator[None]:
        require_service("Redis", "127.0.0.1", 6379)
        yield


@pytest.fixture(scope="module", autouse=True)
def _remove_store_streams() -> Iterator[None]:
    yield
    delete_redis_keys(STORE_PREFIX)


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


if not green.patched():

    class TestAsyncZmqDriverWithANotificationStore(AsyncDriverContract):
        url = TestZmqDriverWithANotificationStore.url

        @pytest.fixture(autouse=True)
        def _redis(self) -> Iterator[None]:
            require_service("Redis", "127.0.0.1", 6379)
            yield
