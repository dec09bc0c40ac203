"""Opening one RabbitMQ connection, tuned for a link, and what describes it.

:func:`open_connection` makes one attempt through kombu's py-amqp transport
and returns the bare py-amqp connection, tuned for how
:class:`~rpcframe.drivers.amqp.link.Link` uses it: channels the broker
closed stay closed, the socket is blocking with kernel-side time limits and
reads ahead, and a :class:`~rpcframe.drivers.amqp.frames.FrameReader` sees
every frame. The settings every link of a driver shares, and the helpers to
drop or describe a connection without leaking credentials, live here too.

In an eventlet-patched process the socket is green: it is non-blocking
underneath, so the kernel's time limits do not apply and eventlet's own
(``settimeout``, which costs nothing there) bound each read and write
instead; and a :class:`~rpcframe.drivers.amqp.pulse.Guard` lets native
threads write heartbeats between the green threads' frames.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import struct
from typing import Any

import amqp
import amqp.exceptions
import kombu

from rpcframe import green
from rpcframe.drivers.amqp import frames, pulse

__all__ = [
    "CONNECT_TIMEOUT",
    "IO_ERRORS",
    "IO_TIMEOUT",
    "Host",
    "LinkSettings",
    "describe",
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

#: Everything py-amqp or the socket layer raises when a connection fails.
IO_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    amqp.exceptions.AMQPError,
)


@dataclasses.dataclass(frozen=True)
class Host:
    """One broker address from the transport URL."""

    hostname: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"{self.hostname}:{self.port}"


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    """How to reach the broker; shared by every link of a driver."""

    hosts: tuple[Host, ...]
    virtual_host: str
    ssl: dict[str, Any] | None
    heartbeat: int
    heartbeat_rate: int
    login_method: str
    retry_interval: float
    retry_backoff: float
    interval_max: float
    splay: float
    shuffle: bool


class _Channel(amqp.Channel):
    """A py-amqp channel that stays closed when the broker closes it.

    py-amqp reopens a channel the broker closed, silently dropping its
    consumers and confirm mode. A link instead treats a closed channel as a
    broken connection and rebuilds everything from scratch. Bodies stay
    bytes: the driver never decodes them.
    """

    def __init__(self, connection: Any, channel_id: Any = None, **kwargs: Any) -> None:
        kwargs["auto_decode"] = False
        super().__init__(connection, channel_id, **kwargs)

    def _do_revive(self) -> None:
        self.is_open = False


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
    conn.Channel = _Channel
    transport = conn.transport
    # Read ahead: py-amqp asks the socket for exactly one frame part at
    # a time; taking whatever is there saves a poll and two recv calls
    # per frame. The surplus stays in py-amqp's own read buffer.
    quick_recv = transport._quick_recv
    transport._quick_recv = lambda n: quick_recv(max(n, _READ_AHEAD))
    # Deliveries and confirms are parsed without py-amqp's layers.
    conn.rpcframe_frames = frames.FrameReader(conn)
    sock = transport.sock
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if green.patched():
        sock.settimeout(IO_TIMEOUT)
        conn.rpcframe_guard = pulse.install(transport)
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


def socket_of(conn: amqp.Connection) -> socket.socket | None:
    """The connection's socket, or None once py-amqp dropped its transport."""
    # The private attribute: the public property warns once it is gone.
    transport = getattr(conn, "_transport", None)
    return getattr(transport, "sock", None) if transport is not None else None


def discard(conn: amqp.Connection | None) -> None:
    """Drop a connection without talking to the broker."""
    if conn is None:
        return
    guard = guard_of(conn)
    if guard is not None:
        guard.retire()
    with contextlib.suppress(*IO_ERRORS, AttributeError, TypeError):
        conn.collect()


def describe(exc: BaseException) -> str:
    """A short text for an I/O error, without credentials."""
    if isinstance(exc, amqp.exceptions.AMQPError) and exc.reply_text:
        return f"{type(exc).__name__}: {exc.reply_code} {exc.reply_text}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
