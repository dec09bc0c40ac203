"""How work flows between servers and RabbitMQ: windows, and replies in flight.

A server takes from a shared queue only what its free workers can start (a
window of channel-wide QoS), so a busy server leaves requests and
notifications to the other servers of its topic or pool. Replies of
concurrent calls overlap on the server's connection: on a link with a long
round trip, ten calls at once take about as long as one.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from tests import brokers
from tests.functional.latency_proxy import LatencyProxy

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

WAIT = 20.0
#: Messages a server whose workers are all busy may still hold: RabbitMQ
#: has no window of 0, so one waits in the busy server.
BUSY_SERVER_HOLDS = 1


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


class Tally:
    """Who handled which message; waits for counts, with a deadline."""

    def __init__(self) -> None:
        self.by: dict[str, list[int]] = {}
        self._changed = threading.Condition()

    def record(self, who: str, i: int) -> None:
        with self._changed:
            self.by.setdefault(who, []).append(i)
            self._changed.notify_all()

    def count(self, who: str) -> int:
        return len(self.by.get(who, []))

    def wait_for(self, done: Callable[[], bool], timeout: float = WAIT) -> bool:
        with self._changed:
            return self._changed.wait_for(done, timeout)


class Blocking:
    """Records each message; message 0 blocks until ``release`` is set."""

    def __init__(self, name: str, tally: Tally) -> None:
        self.name = name
        self.tally = tally
        self.entered = threading.Event()
        self.release = threading.Event()

    def _handle(self, i: int) -> None:
        self.tally.record(self.name, i)
        if i == 0:
            self.entered.set()
            self.release.wait(WAIT)

    def work(self, ctxt: Any, i: int) -> None:
        self._handle(i)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._handle(payload["i"])


@pytest.mark.parametrize("limit", ["pool_size", "max_concurrent_calls"])
def test_a_server_whose_workers_are_all_busy_leaves_casts_to_the_other_server(topic, limit):
    """One worker: a pool of one, or a server limited to one call at a time."""
    tally = Tally()
    busy_endpoint, idle_endpoint = Blocking("busy", tally), Blocking("idle", tally)
    pool = 1 if limit == "pool_size" else None
    transports = [rpcframe.get_rpc_transport(_conf(topic, pool), brokers.RABBIT_URL)]
    transports.append(rpcframe.get_rpc_transport(_conf(topic), brokers.RABBIT_URL))
    limits = [{"max_concurrent_calls": 1} if limit == "max_concurrent_calls" else {}, {}]
    servers = [
        rpcframe.get_rpc_server(t, rpcframe.Target(topic=topic, server=e.name), [e], **more)
        for t, e, more in zip(transports, (busy_endpoint, idle_endpoint), limits, strict=True)
    ]
    for server in servers:
        server.start()
    client_transport = rpcframe.get_rpc_transport(_conf(topic), brokers.RABBIT_URL)
    client = rpcframe.get_rpc_client(client_transport, rpcframe.Target(topic=topic))
    casts = 40
    try:
        client.prepare(server="busy").cast({}, "work", i=0)
        assert busy_endpoint.entered.wait(WAIT)  # its only worker is busy now
        for i in range(1, casts + 1):
            client.cast({}, "work", i=i)
        reached_idle = tally.wait_for(
            lambda: tally.count("idle") >= casts - BUSY_SERVER_HOLDS, timeout=10
        )
        assert reached_idle, f"the busy server kept {casts - tally.count('idle')} of {casts}"
        busy_endpoint.release.set()
        assert tally.wait_for(lambda: tally.count("busy") + tally.count("idle") == casts + 1)
    finally:
        busy_endpoint.release.set()
        for server in servers:
            server.stop()
            server.wait()
        for transport in (*transports, client_transport):
            transport.cleanup()
    assert tally.count("busy") - 1 <= BUSY_SERVER_HOLDS


def test_a_busy_listener_leaves_notifications_to_the_rest_of_its_pool(topic):
    tally = Tally()
    busy_endpoint, idle_endpoint = Blocking("busy", tally), Blocking("idle", tally)
    pool = f"pool_{topic}"
    transports = [
        rpcframe.get_notification_transport(_conf(topic, 1), brokers.RABBIT_URL),
        rpcframe.get_notification_transport(_conf(topic), brokers.RABBIT_URL),
    ]
    listeners = [
        rpcframe.get_notification_listener(t, [rpcframe.Target(topic=topic)], [e], pool=pool)
        for t, e in zip(transports, (busy_endpoint, idle_endpoint), strict=True)
    ]
    # The busy one subscribes first, so that it gets notification 0.
    listeners[0].start()
    notifier = rpcframe.Notifier(transports[0], "flow.test", driver="messagingv2", topics=[topic])
    count = 20
    try:
        notifier.info({}, "flow.event", {"i": 0})
        assert busy_endpoint.entered.wait(WAIT)
        listeners[1].start()
        for i in range(1, count + 1):
            notifier.info({}, "flow.event", {"i": i})
        # A notification is acknowledged when its endpoint returns: the one
        # the busy listener runs fills its whole window, so it holds none.
        assert tally.wait_for(lambda: tally.count("idle") == count, timeout=10), (
            f"the busy listener kept {count - tally.count('idle')} of {count}"
        )
    finally:
        busy_endpoint.release.set()
        for listener in listeners:
            listener.stop()
            listener.wait()
        for transport in transports:
            transport.cleanup()
    assert tally.by["busy"] == [0]


def test_a_batch_listener_still_gets_full_batches(topic):
    batches: list[int] = []
    full = threading.Event()
    batch_size, count = 10, 30

    class Batches:
        def info(self, messages: list[dict[str, Any]]) -> None:
            batches.append(len(messages))
            if sum(batches) >= count:
                full.set()

    transport = rpcframe.get_notification_transport(_conf(topic, 1), brokers.RABBIT_URL)
    listener = rpcframe.get_batch_notification_listener(
        transport, [rpcframe.Target(topic=topic)], [Batches()], batch_size=batch_size
    )
    notifier = rpcframe.Notifier(transport, "flow.test", driver="messagingv2", topics=[topic])
    try:
        for i in range(count):  # queued before the listener takes any
            notifier.info({}, "flow.event", {"i": i})
        listener.start()
        assert full.wait(WAIT)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    # One worker takes batch_size messages at a time: its window holds a batch.
    assert batches == [batch_size] * (count // batch_size)


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
