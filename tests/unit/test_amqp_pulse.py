"""Native writes beside green threads: the Guard, the Pulse and the keeper's liveness check."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import amqp
import pytest

from rpcframe.drivers.amqp import pulse, pyamqp
from rpcframe.drivers.amqp.connection import Host, LinkSettings
from rpcframe.drivers.amqp.link import Link

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, broker = socket.socketpair()
    broker.settimeout(5)
    yield ours, broker
    ours.close()
    broker.close()


class _Connection:
    """A connection whose socket I/O :func:`pulse.install` wraps through the py-amqp seam."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.write = sock.sendall
        self.recv = sock.recv


@pytest.fixture(autouse=True)
def _seam(monkeypatch):
    """py-amqp's side, as :mod:`rpcframe.drivers.amqp.pyamqp` reaches it, on a plain socket."""

    def wrap_io(conn, write, read=None):
        conn.write = write(conn.write)
        if read is not None:
            conn.recv = read(conn.recv)

    monkeypatch.setattr(pyamqp, "socket_of", lambda conn: getattr(conn, "sock", None))
    monkeypatch.setattr(pyamqp, "wrap_io", wrap_io)


def _received(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the peer closed"
        data += chunk
    return data


def test_frames_written_by_py_amqp_and_by_a_native_thread_arrive_whole(pair):
    ours, broker = pair
    conn = _Connection(ours)
    guard = pulse.install(conn)
    conn.write(b"frame-one")
    assert guard.send(pulse.HEARTBEAT_FRAME)
    conn.write(b"frame-two")
    assert _received(broker, 26) == b"frame-one" + pulse.HEARTBEAT_FRAME + b"frame-two"


def test_a_guarded_write_counts_as_written(pair):
    ours, _broker = pair
    conn = _Connection(ours)
    guard = pulse.install(conn)
    guard.last_write = 0.0
    conn.write(b"x")
    assert time.monotonic() - guard.last_write < 5


def test_nothing_is_written_on_a_retired_connection(pair):
    ours, broker = pair
    guard = pulse.install(_Connection(ours))
    guard.retire()
    assert not guard.send(pulse.HEARTBEAT_FRAME)
    broker.settimeout(0)
    with pytest.raises(BlockingIOError):
        broker.recv(8)


def test_a_socket_with_no_room_writes_nothing_and_stays_usable(pair):
    ours, _broker = pair
    guard = pulse.install(_Connection(ours))
    guard._writable = lambda timeout: False
    assert not guard.send(pulse.HEARTBEAT_FRAME)
    assert not guard.retired


def test_a_frame_left_half_written_shuts_the_connection(pair, monkeypatch):
    ours, broker = pair
    guard = pulse.install(_Connection(ours))
    room = iter([True, False])
    monkeypatch.setattr(guard, "_writable", lambda timeout: next(room))
    monkeypatch.setattr(guard, "_write_some", lambda view: ours.send(view[:3]))
    assert not guard.send(pulse.HEARTBEAT_FRAME)
    assert guard.retired
    assert _received(broker, 3) == pulse.HEARTBEAT_FRAME[:3]
    assert broker.recv(8) == b""  # the link sees its connection end


def test_the_pulse_writes_a_heartbeat_on_a_silent_connection(pair):
    ours, broker = pair
    guard = pulse.install(_Connection(ours))
    beating = pulse.Pulse("unit-pulse", lambda: guard, interval=0.05)
    beating.start()
    try:
        assert _received(broker, 8) == pulse.HEARTBEAT_FRAME
    finally:
        beating.stop(5)
    assert guard.beats >= 1


def test_waiting_bytes_count_as_life_while_another_thread_holds_the_reader_role(pair, monkeypatch):
    # A hub that was blocked runs again: the keeper's timer fires before the
    # reader has read what the broker sent meanwhile. The connection is
    # py-amqp's own, whose heartbeat_tick decides; its socket comes through
    # the seam.
    ours, broker = pair
    settings = LinkSettings(
        hosts=(Host("localhost", 5672, "guest", "guest"),),
        virtual_host="/",
        ssl=None,
        heartbeat=2,
        heartbeat_rate=2,
        login_method="AMQPLAIN",
        retry_interval=1.0,
        retry_backoff=1.0,
        interval_max=1.0,
        splay=0.0,
        shuffle=False,
    )
    link = Link(settings, "unit-link", lambda conn, generation: None)
    conn = amqp.Connection(heartbeat=2)
    monkeypatch.setattr(pyamqp, "socket_of", lambda c: ours if c is conn else None)
    conn.heartbeat = 2
    now = time.monotonic()
    # What py-amqp knows: the broker has been silent for 10 s (5 heartbeats).
    conn.prev_sent, conn.prev_recv = conn.bytes_sent, conn.bytes_recv
    conn.last_heartbeat_sent, conn.last_heartbeat_received = now, now - 10
    link._conn, link._generation, link._reader = conn, 1, -1
    broker.send(b"\x08")
    try:
        link.beat()
        assert link.connected and link.generation == 1
    finally:
        link._reader = None
        link._conn = None
        link.close()
