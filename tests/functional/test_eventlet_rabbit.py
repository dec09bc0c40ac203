"""RabbitMQ in an eventlet-patched process: what an endpoint that blocks the hub must not stop.

Run by ``python -m tests.patched`` (``tox -e eventlet``); skipped in a
threaded process. The endpoints here block the hub on purpose, with a call
eventlet did not make green (the native ``time.sleep``), as a C library or
an unpatched module does in a real service. That was oslo.messaging's
heartbeat starvation under eventlet: the connections must outlive it (the
broker does not close them and nothing reconnects), call-monitor heartbeats
must go on, and connections the broker does close must come back.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from rpcframe.drivers.amqp.connection import guard_of, socket_of
from tests import brokers
from tests.conftest import logged, run_python

pytestmark = [
    pytest.mark.broker,
    pytest.mark.timeout(120),
    pytest.mark.patched_only,
]

#: A 2 s heartbeat: RabbitMQ closes a connection it hears nothing from for about 4 s.
HEARTBEAT = "heartbeat_timeout_threshold=2"
#: How long the endpoints hold the hub: three heartbeat timeouts.
HOLD = 6.0
WAIT = 30.0


class Blocking:
    """Holds the whole process (every green thread) for as long as it is told."""

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def hold(self, ctxt: Any, seconds: float) -> str:
        import eventlet.patcher

        eventlet.patcher.original("time").sleep(seconds)
        return "held"


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"green_x{tag}", f"green_{tag}"
    yield exchange, topic
    brokers.delete_queues(prefixes=(topic,))
    brokers.delete_exchanges([exchange])


@contextlib.contextmanager
def serving(conf: Any, url: str, topic: str) -> Iterator[tuple[rpcframe.Transport, Any]]:
    """A transport, a Blocking server on green threads and a client; all gone afterwards."""
    transport = rpcframe.get_rpc_transport(conf, url)
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s1"), [Blocking()], executor="eventlet"
    )
    server.start()
    try:
        yield (
            transport,
            rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=WAIT),
        )
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _links(*transports: rpcframe.Transport) -> list[Any]:
    """Every connection of the transports: publishers, listeners, reply inboxes."""
    links = []
    for transport in transports:
        driver = transport._driver
        links += [driver._publisher.link, *(consumer.link for consumer in driver._consumers)]
    return links


def _local_port(link: Any) -> int:
    sock = socket_of(link._conn)
    assert sock is not None, f"{link.name} is not connected"
    port: int = sock.getsockname()[1]
    return port


def _broker_connections() -> dict[int, str]:
    """The broker's client connections from this machine: peer port -> process id."""
    out = brokers.rabbitmqctl("list_connections", "--no-table-headers", "peer_port", "pid")
    found = {}
    for line in out.splitlines():
        port, _, pid = line.strip().partition("\t")
        if port.isdigit():
            found[int(port)] = pid
    return found


def _assert_survived(links: list[Any], generations: list[int], ports: set[int]) -> None:
    assert [link.generation for link in links] == generations, "a connection was made again"
    assert ports <= set(_broker_connections()), "the broker closed a connection"
    # The native pulse wrote the heartbeats while the hub was held.
    assert all(guard_of(link._conn).beats > 0 for link in links)


def test_connections_outlive_an_endpoint_that_blocks_the_hub(names):
    exchange, topic = names
    conf = brokers.conf_for_exchange(exchange)
    with serving(conf, f"{brokers.RABBIT_URL}?{HEARTBEAT}", topic) as (transport, client):
        assert client.call({}, "echo", value=1) == 1
        links = _links(transport)
        generations = [link.generation for link in links]
        ports = {_local_port(link) for link in links}

        assert client.call({}, "hold", seconds=HOLD) == "held"

        assert client.call({}, "echo", value=2) == 2
        _assert_survived(links, generations, ports)


def test_connections_over_tls_outlive_an_endpoint_that_blocks_the_hub(names, tmp_path):
    tls = pytest.importorskip("tests.functional.tls")
    exchange, topic = names
    pki = tls.make_pki(tmp_path)
    # The proxy runs in a process of its own: this one is held on purpose.
    with tls.proxy_process(pki, (brokers.RABBIT_HOST, brokers.RABBIT_PORT)) as port:
        conf = brokers.conf_for_exchange(exchange)
        rpcframe.opts.register_all(conf)
        group = rpcframe.opts.RABBIT_GROUP
        conf.set_override("ssl", True, group)
        conf.set_override("ssl_ca_file", str(pki.ca), group)
        conf.set_override("ssl_cert_file", str(pki.client_cert), group)
        conf.set_override("ssl_key_file", str(pki.client_key), group)
        url = f"rabbit://localhost:{port}/?{HEARTBEAT}"
        with serving(conf, url, topic) as (transport, client):
            assert client.call({}, "echo", value="tls") == "tls"
            links = _links(transport)
            generations = [link.generation for link in links]

            assert client.call({}, "hold", seconds=HOLD) == "held"

            assert client.call({}, "echo", value="again") == "again"
            assert [link.generation for link in links] == generations
            assert all(guard_of(link._conn).beats > 0 for link in links)


CALLER = """\
import sys

import rpcframe
from tests import brokers

url, exchange, topic, hold = sys.argv[1:]
transport = rpcframe.get_rpc_transport(brokers.conf_for_exchange(exchange), url)
client = rpcframe.get_rpc_client(
    transport, rpcframe.Target(topic=topic), timeout=30, call_monitor_timeout=2
)
try:
    print(client.call({}, "hold", seconds=float(hold)))
except rpcframe.MessagingTimeout as exc:
    print(f"MessagingTimeout: {exc}")
finally:
    transport.cleanup()
"""


def test_call_monitor_heartbeats_go_on_while_an_endpoint_blocks_the_hub(names):
    # The caller runs in a threaded process of its own: it notices at once
    # when heartbeats stop (after 2 s; the endpoint holds the hub for 6).
    exchange, topic = names
    with serving(brokers.conf_for_exchange(exchange), brokers.RABBIT_URL, topic):
        done = run_python(CALLER, brokers.RABBIT_URL, exchange, topic, str(HOLD), timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "held", done.stdout


def test_connections_the_broker_closes_come_back(names):
    exchange, topic = names
    conf = brokers.conf_for_exchange(exchange)
    # Short heartbeats: the keepers read often, so each link soon sees its
    # connection closed.
    url = f"{brokers.RABBIT_URL}?heartbeat_timeout_threshold=4"
    with serving(conf, url, topic) as (transport, client):
        assert client.call({}, "echo", value=1) == 1
        links = _links(transport)
        generations = [link.generation for link in links]
        pids = _broker_connections()
        with contextlib.ExitStack() as stack:
            lost = [
                stack.enter_context(logged("rpcframe.drivers.amqp.link", f"{link.name}: lost"))
                for link in links
            ]
            for link in links:
                brokers.rabbitmqctl(
                    "close_connection", pids[_local_port(link)], "rpcframe eventlet test"
                )
            assert all(event.wait(WAIT) for event in lost)

        assert client.call({}, "echo", value=2) == 2
        assert all(
            link.generation > before for link, before in zip(links, generations, strict=True)
        )
