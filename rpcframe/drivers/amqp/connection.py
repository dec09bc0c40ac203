"""Opening one RabbitMQ connection, tuned for a link, and what describes it.

:func:`open_connection` makes one attempt through kombu's py-amqp transport
(kombu's public ``Connection`` and ``establish_connection``: its URL-free
set-up of a py-amqp connection, TLS and login method included) and returns
the bare py-amqp connection, tuned for how
:class:`~rpcframe.drivers.amqp.link.Link` uses it: channels the broker
closed stay closed, the socket is blocking with kernel-side time limits and
reads ahead, and a :class:`~rpcframe.drivers.amqp.frames.FrameReader` sees
every frame. What of that needs py-amqp's internals goes through
:mod:`~rpcframe.drivers.amqp.pyamqp`. The settings every link of a driver
shares, and the helpers to drop a connection, live here too.

In an eventlet-patched process the socket is green: it is non-blocking
underneath, so the kernel's time limits do not apply and eventlet's own
(``settimeout``, which costs nothing there) bound each read and write
instead; and a :class:`~rpcframe.drivers.amqp.pulse.Guard` lets native
threads write heartbeats between the green threads' frames.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

import amqp
import kombu

from rpcframe import green
from rpcframe.drivers.amqp import frames, pulse, pyamqp
from rpcframe.drivers.amqp.errors import IO_ERRORS
from rpcframe.drivers.amqp.pyamqp import socket_of
from rpcframe.drivers.amqp.settings import Host, LinkSettings

__all__ = [
    "CONNECT_TIMEOUT",
    "IO_TIMEOUT",
    "Host",
    "LinkSettings",
    "discard",
    "guard_of",
    "idle_timeout",
    "open_connection",
    "socket_of",
]

#: Bound on one TCP connect plus AMQP handshake.
CONNECT_TIMEOUT = 10.0
#: Kernel-side bound on one blocking socket write or read; a peer slower
#: than this is treated as dead.
IO_TIMEOUT = 30.0
#: Bytes asked of the socket per read.
_READ_AHEAD = 65536


def open_connection(settings: LinkSettings, host: Host, timeout: float) -> amqp.Connection:
    """One connection attempt to ``host``, bounded by ``timeout``; raises IO_ERRORS.

    The connection comes back tuned for the link: channels that stay closed,
    a read-ahead socket with kernel-side time limits, and a frame reader.
    """
    s = settings
    tls: dict[str, Any] | bool = False
    if s.ssl is not None:
        tls = dict(s.ssl)
        if "server_hostname" in tls:
            tls["server_hostname"] = host.hostname
    client = kombu.Connection(
        hostname=host.hostname,
        port=host.port,
        userid=host.username,
        password=host.password,
        virtual_host=s.virtual_host,
        ssl=tls,
        heartbeat=s.heartbeat,
        login_method=s.login_method,
        connect_timeout=max(0.05, min(timeout, CONNECT_TIMEOUT)),
        transport="pyamqp",
    )
    # One attempt, no retries of kombu's own: the link paces attempts.
    conn: amqp.Connection = client.transport.establish_connection()
    # kombu's own wrapper is not used past this point: the link drives
    # the py-amqp connection directly (see the module documentation).
    pyamqp.keep_channels_closed(conn)
    pyamqp.read_ahead(conn, _READ_AHEAD)
    # Deliveries and confirms are parsed without py-amqp's layers.
    conn.rpcframe_frames = frames.FrameReader(pyamqp.Inbound(conn))
    sock = conn.transport.sock
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if green.patched():
        sock.settimeout(IO_TIMEOUT)
        conn.rpcframe_guard = pulse.install(conn)
        return conn
    # A blocking socket with kernel-side time limits: Python's own
    # timeouts would poll() before every send and recv.
    sock.settimeout(None)
    limit = struct.pack("ll", int(IO_TIMEOUT), 0)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    return conn


def idle_timeout() -> float | None:
    """A connection socket's time limit outside deadline-bound sections.

    None (blocking; the kernel's limits apply) in a threaded process;
    IO_TIMEOUT in a patched one, whose sockets only have eventlet's limits.
    """
    return IO_TIMEOUT if green.patched() else None


def guard_of(conn: amqp.Connection | None) -> pulse.Guard | None:
    """The connection's Guard (patched processes only), else None."""
    guard: pulse.Guard | None = getattr(conn, "rpcframe_guard", None)
    return guard


def discard(conn: amqp.Connection | None) -> None:
    """Drop a connection without talking to the broker."""
    if conn is None:
        return
    guard = guard_of(conn)
    if guard is not None:
        guard.retire()
    with contextlib.suppress(*IO_ERRORS, AttributeError, TypeError):
        conn.collect()
