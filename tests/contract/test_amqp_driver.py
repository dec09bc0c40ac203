"""The driver contract suite on RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from oslo_config import cfg

from rpcframe import green
from rpcframe.testing.contract import DriverContract
from rpcframe.testing.contract_aio import AsyncDriverContract
from tests import brokers


class TestRabbitDriver(DriverContract):
    url = brokers.RABBIT_URL

    @pytest.fixture(autouse=True)
    def _rabbitmq(self) -> Iterator[None]:
        brokers.require_rabbitmq()
        yield


if not green.patched():  # asyncio drivers do not run in a monkey-patched process

    class TestAsyncRabbitDriver(AsyncDriverContract):
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


#: What Kolla-Ansible configures, as URL parameters, but for the prefetch
#: count: a batch listener holds a whole batch (100 here) unacknowledged,
#: which Kolla-Ansible's 50 would not let in. The queue manager needs a lock
#: directory; tests/functional/test_kolla_interop.py exercises it.
KOLLA_QUERY = (
    "rabbit_quorum_queue=true&rabbit_transient_quorum_queue=true"
    "&rabbit_stream_fanout=true&rabbit_qos_prefetch_count=250"
)


class TestRabbitDriverWithKollaOptions(TestRabbitDriver):
    """The same contract with quorum queues, transient quorum queues and stream fanout."""

    url = f"{brokers.RABBIT_URL}?{KOLLA_QUERY}"

    @pytest.fixture(autouse=True)
    def _shared_exchange(self, _rabbitmq: None) -> None:
        # Driver-level cases use the exchange "contract", which runs with
        # default options declare transient: declare it so first, so that
        # this run (which would declare it durable) uses it as it is and
        # never leaves a durable one behind for the others.
        with brokers.admin_channels() as channel_of:
            channel_of().exchange_declare("contract", "topic", durable=False, auto_delete=False)

    @pytest.fixture
    def conf(self) -> Iterator[cfg.ConfigOpts]:
        # Durable exchanges of its own: other runs declare theirs transient.
        exchange = f"contract_kolla_{uuid.uuid4().hex[:10]}"
        yield brokers.conf_for_exchange(exchange)
        brokers.delete_exchanges([exchange])

    @pytest.fixture
    def topic(self) -> str:
        return f"contract_kolla_{uuid.uuid4().hex[:12]}"
