"""The driver contract suite on RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpcframe import green
from rpcframe.testing.contract import DriverContract
from tests import brokers


class TestRabbitDriver(DriverContract):
    url = brokers.RABBIT_URL

    @pytest.fixture(autouse=True)
    def _rabbitmq(self) -> Iterator[None]:
        brokers.require_rabbitmq()
        yield


if green.patched():  # python -m tests.patched (tox -e eventlet)

    class TestRabbitDriverOnTheEventletExecutor(TestRabbitDriver):
        """The suite again, servers and listeners on green threads."""

        executor = "eventlet"


@pytest.fixture(scope="module", autouse=True)
def _remove_contract_queues() -> Iterator[None]:
    """The suite's topic and server queues outlive it; delete them afterwards."""
    yield
    brokers.delete_queues(prefixes=("contract_",))
