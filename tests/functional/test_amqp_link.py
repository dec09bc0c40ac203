"""A link after its connection broke: the reader lets go, and a server serves again.

A network that silently drops everything (a *blackhole*: connections stay
open, nothing passes) is noticed only by missed heartbeats. Once it heals,
a server must serve again within a couple of heartbeat timeouts, however
long it lasted: with the server's threads, and with its green threads in an
eventlet-patched process of its own (as nova runs one). The slow variant,
with a 10 s heartbeat timeout and a 30 s blackhole, runs with
``RPCFRAME_SLOW_TESTS=1``.

The reader's side of a broken connection is also tested with the link's
hand-off hook (``link._HOOK``), which holds the reader at the one moment
where it could otherwise go back to waiting on a socket number that the
next connection, or any other file, has taken in the meantime.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import opts
from rpcframe.drivers.amqp import link as link_module
from rpcframe.drivers.amqp import pyamqp
from rpcframe.drivers.amqp.connection import LinkSettings
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.drivers.amqp.link import Link, LinkDown
from rpcframe.transport import TransportURL
from tests import brokers
from tests.conftest import child_process
from tests.functional.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.broker]

SLOW = os.environ.get("RPCFRAME_SLOW_TESTS", "") not in ("", "0", "false", "no")


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    brokers.require_rabbitmq()
    name = f"link_{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: brokers.delete_queues(prefixes=(name,)))
    return name


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


#: A server in an eventlet-patched process, as nova runs one: serves until stdin closes.
GREEN_SERVER = """
import warnings
warnings.filterwarnings("ignore")
import eventlet
eventlet.monkey_patch()
import os
import sys
from oslo_config import cfg
import rpcframe
from tests.functional.test_amqp_link import Echo
conf = cfg.ConfigOpts()
conf([])
transport = rpcframe.get_rpc_transport(conf, sys.argv[1])
target = rpcframe.Target(topic=sys.argv[2], server="s1")
server = rpcframe.get_rpc_server(transport, target, [Echo()], executor="eventlet")
server.start()
print("serving", flush=True)
while os.read(0, 4096):  # green: the hub runs meanwhile
    pass
server.stop()
server.wait()
transport.cleanup()
"""


@contextlib.contextmanager
def _server(url: str, topic: str, green: bool) -> Iterator[None]:
    """An Echo server on ``url``: threaded here, or green in a patched child process."""
    if green:
        command = [sys.executable, "-W", "ignore", "-c", GREEN_SERVER, url, topic]
        with child_process(command) as proc:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "serving", proc.stderr
            yield
        return
    transport = rpcframe.get_rpc_transport(_conf(), url)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s1"), [Echo()])
    server.start()
    try:
        yield
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def _serves_again_after_a_blackhole(topic: str, threshold: int, outage: float, green: bool) -> None:
    client_transport = rpcframe.get_rpc_transport(_conf(), brokers.RABBIT_URL)
    client = rpcframe.get_rpc_client(client_transport, rpcframe.Target(topic=topic), timeout=1)
    try:
        with TcpProxy((brokers.RABBIT_HOST, brokers.RABBIT_PORT)) as proxy:
            url = proxy.url() + f"?heartbeat_timeout_threshold={threshold}"
            with _server(url, topic, green):
                first = rpcframe.get_rpc_client(
                    client_transport, rpcframe.Target(topic=topic), timeout=20
                )
                assert first.call({}, "echo", value="before") == "before"
                proxy.blackhole()
                # The outage itself: waiting it out is what is tested.
                time.sleep(outage)
                proxy.resume()
                healed = time.monotonic()
                answer = None
                while answer is None and time.monotonic() < healed + 2 * threshold:
                    with contextlib.suppress(rpcframe.MessagingTimeout):
                        answer = client.call({}, "echo", value="after")
                took = time.monotonic() - healed
                assert answer == "after", f"no answer {took:.1f} s after the network healed"
                for i in range(20):
                    assert client.call({}, "echo", value=i) == i
    finally:
        client_transport.cleanup()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("green", [False, True], ids=["threads", "eventlet"])
def test_a_server_serves_again_soon_after_a_blackhole_longer_than_the_heartbeat_timeout(
    topic, green
):
    _serves_again_after_a_blackhole(topic, threshold=4, outage=10.0, green=green)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.skipif(not SLOW, reason="a 30 s outage; set RPCFRAME_SLOW_TESTS=1")
@pytest.mark.parametrize("green", [False, True], ids=["threads", "eventlet"])
def test_a_server_serves_again_soon_after_a_30_s_blackhole_with_a_10_s_heartbeat(topic, green):
    _serves_again_after_a_blackhole(topic, threshold=10, outage=30.0, green=green)


# -- the reader of a broken connection --------------------------------------------------------


def _settings() -> LinkSettings:
    """The broker's, as a driver makes them from its URL (without heartbeats)."""
    conf = _conf()
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    url = TransportURL.parse(conf, brokers.RABBIT_URL + "?heartbeat_timeout_threshold=0")
    return RabbitDriver(conf, url).settings


@pytest.mark.timeout(60)
def test_a_reader_woken_as_its_connection_breaks_never_waits_on_a_reused_socket_number(
    topic, monkeypatch
):
    link = Link(_settings(), f"{topic}-link", lambda conn, generation: None)
    link.ensure(time.monotonic() + 10)
    generation = link.generation
    sock = pyamqp.socket_of(link._conn)
    assert sock is not None
    number = sock.fileno()
    reader_thread: list[threading.Thread] = []
    parked, release = threading.Event(), threading.Event()
    polling = threading.Event()

    def hook(point: str) -> None:
        if not reader_thread or threading.current_thread() is not reader_thread[0]:
            return
        if point == "wait.reader":
            polling.set()
        elif point == "read.polled" and not parked.is_set():
            # Woken up (by the kick below), not yet waiting again.
            parked.set()
            release.wait(10)

    monkeypatch.setattr(link_module, "_HOOK", hook)
    outcome: list[BaseException | bool] = []

    def read() -> None:
        try:
            outcome.append(link.wait(lambda: False, None))
        except BaseException as exc:  # reported by the test
            outcome.append(exc)

    thread = threading.Thread(target=read, name="link-test-reader", daemon=True)
    reader_thread.append(thread)
    quiet: list[socket.socket] = []
    try:
        thread.start()
        assert polling.wait(10)
        link.kick()
        assert parked.wait(10), "the reader never woke up"
        link.broken(generation, OSError("broken by the test"))
        # Whatever opens a file next may be given the broken socket's number;
        # here, sockets on which nothing ever arrives.
        for _ in range(20):
            pair = socket.socketpair()
            quiet.extend(pair)
            if number in (pair[0].fileno(), pair[1].fileno()):
                break
        release.set()
        thread.join(5)
        assert not thread.is_alive(), "the reader still waits on the broken connection"
        assert len(outcome) == 1 and isinstance(outcome[0], LinkDown), outcome
        assert sock.fileno() == -1, "the broken connection's socket was never closed"
    finally:
        release.set()
        link.close()
        thread.join(10)
        for s in quiet:
            s.close()


# -- handing the reader role on ----------------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_reader_that_waited_in_line_hands_the_role_to_the_next_waiter(topic, monkeypatch):
    # A waits behind reader X, then takes the role when X leaves; B then waits
    # behind A. When A leaves, B must get the role at once: A's own place in
    # line is no longer a waiter to hand it to.
    link = Link(_settings(), f"{topic}-link", lambda conn, generation: None)
    link.ensure(time.monotonic() + 10)
    ready = {"x": False, "a": False, "b": False}
    reading = {name: threading.Event() for name in ready}
    sleeping = {name: threading.Event() for name in ready}

    def hook(point: str) -> None:
        name = threading.current_thread().name.removeprefix("link-test-")
        if name in ready and point == "wait.reader":
            reading[name].set()
        elif name in ready and point == "wait.sleep":
            sleeping[name].set()

    monkeypatch.setattr(link_module, "_HOOK", hook)
    outcome: dict[str, Any] = {}

    def wait(name: str) -> None:
        try:
            outcome[name] = link.wait(lambda: ready[name], time.monotonic() + 20)
        except BaseException as exc:  # reported by the test
            outcome[name] = exc

    threads = {
        name: threading.Thread(target=wait, args=(name,), name=f"link-test-{name}", daemon=True)
        for name in ready
    }
    try:
        threads["x"].start()
        assert reading["x"].wait(10)
        threads["a"].start()
        assert sleeping["a"].wait(10)
        ready["x"] = True
        link._wake()  # only the reader: it sees ready() and hands the role on
        assert reading["a"].wait(10), "the waiter was never handed the role"
        threads["b"].start()
        assert sleeping["b"].wait(10)
        ready["a"] = True
        link._wake()
        assert reading["b"].wait(2), "the role was handed to nobody: the next waiter sleeps on"
    finally:
        for name in ready:
            ready[name] = True
        link.kick()
        for thread in threads.values():
            thread.join(10)
        link.close()
    assert outcome == {"x": True, "a": True, "b": True}
