"""Waiting on a link's sockets, in threaded and in eventlet-patched processes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from rpcframe.drivers.amqp import polling
from tests.conftest import run_python

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, broker = socket.socketpair()
    yield ours, broker
    ours.close()
    broker.close()


def test_the_poller_tells_the_connection_from_the_wake_up_socket():
    conn, broker = socket.socketpair()
    wake_r, wake_w = socket.socketpair()
    try:
        poller = polling.poller(conn.fileno(), wake_r.fileno())
        assert poller.wait(0) == (False, False)
        wake_w.send(b"!")
        assert poller.wait(5) == (False, True)
        broker.send(b"x")
        assert poller.wait(5) == (True, True)
    finally:
        for sock in (conn, broker, wake_r, wake_w):
            sock.close()


def test_readable_sees_waiting_bytes_without_waiting(pair):
    ours, broker = pair
    assert not polling.readable(ours)
    broker.send(b"x")
    assert polling.readable(ours)


def test_the_green_poller_answers_at_once_when_bytes_are_there():
    pytest.importorskip("eventlet")
    code = (
        "import eventlet; eventlet.monkey_patch()\n"
        "import socket\n"
        "from rpcframe.drivers.amqp import polling\n"
        "a, b = socket.socketpair(); w, x = socket.socketpair()\n"
        "poller = polling.poller(a.fileno(), w.fileno())\n"
        "print(type(poller).__name__, poller.wait(0.01))\n"
        "b.send(b'x'); print(poller.wait(None))\n"
        "eventlet.spawn(x.send, b'!'); a.recv(1); print(poller.wait(5))\n"
    )
    done = run_python(code)
    assert done.stdout.splitlines() == [
        "GreenPoller (False, False)",
        "(True, False)",
        "(False, True)",
    ], done.stderr


def test_both_sockets_ready_at_once_end_the_green_wait_once():
    # The waiting green thread must not be switched into a second time, later,
    # wherever it then is (here: a sleep that would end early).
    pytest.importorskip("eventlet")
    code = (
        "import eventlet; eventlet.monkey_patch()\n"
        "import socket, time\n"
        "from rpcframe.drivers.amqp import polling\n"
        "a, b = socket.socketpair(); w, x = socket.socketpair()\n"
        "poller = polling.poller(a.fileno(), w.fileno())\n"
        "def both(): b.send(b'x'); x.send(b'!')\n"
        "eventlet.spawn_after(0.05, both)\n"
        "print(poller.wait(5) in ((True, False), (False, True)))\n"
        "started = time.monotonic(); eventlet.sleep(0.3)\n"
        "print(time.monotonic() - started >= 0.29)\n"
    )
    done = run_python(code)
    assert done.stdout.split() == ["True", "True"], done.stderr
