"""How work flows between servers and RabbitMQ: replies in flight.

Replies of concurrent calls overlap on the server's connection: on a link
with a long round trip, ten calls at once take about as long as one.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from tests import brokers
from tests.functional.latency_proxy import LatencyProxy

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

WAIT = 20.0


@pytest.fixture
def topic() -> Iterator[str]:
    brokers.require_rabbitmq()
    name = f"flow_{uuid.uuid4().hex[:12]}"
    yield name
    brokers.delete_queues(prefixes=(name, f"pool_{name}"))
    brokers.delete_exchanges([name])


def _conf(topic: str, pool_size: int | None = None) -> cfg.ConfigOpts:
    conf = brokers.conf_for_exchange(topic)
    if pool_size is not None:
        conf.set_override("executor_thread_pool_size", pool_size)
    return conf


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


#: Seconds added each way between the server and RabbitMQ.
LINK_DELAY = 0.1


def test_concurrent_calls_to_a_server_on_a_slow_link_overlap(topic):
    # A call costs the server's link one way in (the request) and one way
    # out (the reply); its reply's confirm comes back one more way later.
    # Ten calls at once must not wait for each other's confirms.
    callers = 10
    with LatencyProxy((brokers.RABBIT_HOST, brokers.RABBIT_PORT), LINK_DELAY) as proxy:
        server_transport = rpcframe.get_rpc_transport(_conf(topic), proxy.url())
        server = rpcframe.get_rpc_server(
            server_transport, rpcframe.Target(topic=topic, server="far"), [Echo()]
        )
        server.start()
        client_transport = rpcframe.get_rpc_transport(_conf(topic), brokers.RABBIT_URL)
        client = rpcframe.get_rpc_client(client_transport, rpcframe.Target(topic=topic), timeout=30)
        try:
            client.call({}, "echo", value="warm-up")  # the server connects to send replies
            one_call = []
            for i in range(3):
                started = time.monotonic()
                client.call({}, "echo", value=i)
                one_call.append(time.monotonic() - started)
            sequential = statistics.median(one_call)
            results: list[Any] = []
            threads = [
                threading.Thread(
                    target=lambda i=i: results.append(client.call({}, "echo", value=i))
                )
                for i in range(callers)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            together = time.monotonic() - started
        finally:
            server.stop()
            server.wait()
            server_transport.cleanup()
            client_transport.cleanup()
    assert sorted(results) == list(range(callers))
    # One way in and one way out: no extra round trip per call.
    assert sequential < 2 * LINK_DELAY + 0.15, f"one call took {sequential:.3f} s"
    assert together < 3 * sequential, (
        f"{callers} concurrent calls took {together:.3f} s; one takes {sequential:.3f} s"
    )
