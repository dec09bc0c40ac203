"""py-amqp below its public API: everything of it the driver relies on, in one place.

The driver drives py-amqp connections itself (kombu only opens them, see
:mod:`~rpcframe.drivers.amqp.connection`). For speed and robustness it
reaches below py-amqp's public API in the places listed here, and only
through this module; the rest of the driver uses this module and py-amqp's
public API (``Connection.channel``, ``close``, ``collect``,
``heartbeat_tick``, ``frame_max``, the ``Channel`` methods, ``Message``,
``amqp.exceptions``). kombu's public API (``kombu.Connection``,
``kombu.compression``) needs no such care.

What is relied on, and why:

``Connection.on_inbound_frame`` (a settable hook that ``blocking_read`` calls)
    the frame reader (:mod:`~rpcframe.drivers.amqp.frames`) sees every
    inbound frame first, also those py-amqp's synchronous calls read, and
    passes on to py-amqp's handler what it does not handle itself.
``Connection.frame_writer(type, channel, method, args, content)``, whose
``content`` is duck-typed (``body``, ``properties``, ``_serialize_properties()``)
    acks and publishes are written with pre-encoded arguments and properties.
``Connection.bytes_recv`` (read by ``heartbeat_tick``)
    the frames the reader handles never reach py-amqp, which would otherwise
    count the connection as silent; the keeper also counts bytes waiting on
    the socket as life.
``Connection._transport``
    the transport, or None once py-amqp dropped it; the public property would
    reconnect instead.
``Connection.Channel`` (the class ``channel()`` makes) and ``Channel._do_revive``
    a channel the broker closed stays closed: py-amqp would reopen it,
    silently dropping its consumers and confirm mode.
``Channel.events["basic_return"]``
    where py-amqp delivers a returned (unroutable mandatory) message.
``transport._read_buffer`` and ``transport._read(n, initial)``
    the frame reader parses whole frames straight from py-amqp's buffer.
``transport._quick_recv`` and ``transport._write`` (set by ``_setup_transport``)
    reads take whatever the socket has (read-ahead); in an eventlet-patched
    process a native lock goes around every write, and every TLS read
    (:mod:`~rpcframe.drivers.amqp.pulse`).
``amqp.serialization.dumps(format, values)`` / ``loads(format, buf, offset)``
    the AMQP field-table codec, for the ``headers`` property.

:func:`check` runs when this module is imported and verifies each of these
against the installed py-amqp: that the attribute exists, that py-amqp's own
code still uses it (so that replacing it has an effect), and the parameters
called by name. A py-amqp without one of them fails the import with
:class:`UnsupportedPyAmqp`, an ImportError naming the installed version, what
is missing and the tested range; loading the driver then fails with
DriverLoadFailure instead of misbehaving at run time.
"""

from __future__ import annotations

import inspect
import socket
import types
from collections.abc import Callable, Iterator
from typing import Any

import amqp
from amqp import channel as amqp_channel
from amqp import connection as amqp_connection
from amqp import method_framing, serialization
from amqp import transport as amqp_transport

__all__ = [
    "SUPPORTED",
    "Content",
    "Inbound",
    "UnsupportedPyAmqp",
    "buffered",
    "check",
    "decode",
    "decode_table",
    "encode",
    "keep_channels_closed",
    "missing",
    "note_received",
    "on_return",
    "read_ahead",
    "socket_of",
    "transport_of",
    "wrap_io",
    "write_frame",
]

#: The py-amqp releases the driver is tested with (setup.cfg's extras say the same).
SUPPORTED = ">=5.1.1,<5.5"

#: An inbound frame as py-amqp hands it on: (type, channel, payload).
Frame = tuple[int, int, bytes]


class UnsupportedPyAmqp(ImportError):
    """The installed py-amqp lacks something the driver relies on."""

    def __init__(self, version: str, absent: list[str]) -> None:
        super().__init__(
            f"py-amqp {version} lacks what rpcframe's RabbitMQ driver relies on: "
            f"{', '.join(absent)}; the driver supports amqp{SUPPORTED}"
        )
        self.version = version
        self.missing = absent


# -- the check ------------------------------------------------------------------------


def _code_names(func: Any) -> set[str] | None:
    """Every name ``func``'s code (nested functions included) refers to; None if not Python."""
    code = getattr(func, "__code__", None)
    if code is None:
        return None
    names: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    return names


def _uses(func: Any, name: str) -> bool:
    """Whether ``func`` refers to ``name`` (True when that cannot be told)."""
    names = _code_names(func)
    return names is None or name in names


def _takes(func: Any, *params: str) -> bool:
    try:
        found = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return True
    return all(param in found for param in params)


def _attr(owner: Any, name: str) -> Any:
    return getattr(owner, name, None)


def _reliances() -> Iterator[tuple[str, bool]]:
    """(what, whether the installed py-amqp has it), for everything listed above."""
    conn = _attr(amqp_connection, "Connection")
    chan = _attr(amqp_channel, "Channel")
    yield "amqp.connection.Connection", conn is not None
    yield "amqp.channel.Channel", chan is not None
    if conn is not None:
        yield (
            "Connection.on_inbound_frame",
            hasattr(conn, "on_inbound_frame")
            and _uses(_attr(conn, "blocking_read"), "on_inbound_frame"),
        )
        yield "Connection.frame_writer", hasattr(conn, "frame_writer")
        yield (
            "Connection.bytes_recv",
            hasattr(conn, "bytes_recv") and _uses(_attr(conn, "heartbeat_tick"), "bytes_recv"),
        )
        yield "Connection.heartbeat_tick(rate)", _takes(_attr(conn, "heartbeat_tick"), "rate")
        yield "Connection._transport", _uses(_attr(conn, "__init__"), "_transport")
        yield (
            "Connection.Channel",
            hasattr(conn, "Channel") and _uses(_attr(conn, "channel"), "Channel"),
        )
    if chan is not None:
        yield (
            "Channel._do_revive",
            hasattr(chan, "_do_revive") and _uses(_attr(chan, "_on_close"), "_do_revive"),
        )
        yield "Channel(auto_decode=)", _takes(_attr(chan, "__init__"), "auto_decode")
        yield (
            "Channel.events",
            _uses(_attr(chan, "__init__"), "events")
            and _uses(_attr(chan, "_on_basic_return"), "events"),
        )
    writer = _attr(method_framing, "frame_writer")
    yield (
        "method_framing.frame_writer: content._serialize_properties()",
        writer is not None and _uses(writer, "_serialize_properties"),
    )
    write = _attr(_attr(amqp_transport, "_AbstractTransport"), "write")
    yield "transport write() -> _write", write is not None and _uses(write, "_write")
    for kind in ("TCPTransport", "SSLTransport"):
        cls = _attr(amqp_transport, kind)
        if cls is None:
            yield f"amqp.transport.{kind}", False
            continue
        read, setup = _attr(cls, "_read"), _attr(cls, "_setup_transport")
        yield f"{kind}._read(n, initial)", read is not None and _takes(read, "n", "initial")
        yield f"{kind}._read_buffer", read is not None and _uses(read, "_read_buffer")
        yield (
            f"{kind}._quick_recv",
            read is not None and _uses(read, "_quick_recv") and _uses(setup, "_quick_recv"),
        )
        yield f"{kind}._write", hasattr(cls, "_write") or _uses(setup, "_write")
    dumps, loads = _attr(serialization, "dumps"), _attr(serialization, "loads")
    yield (
        "serialization.dumps(format, values)",
        dumps is not None and _takes(dumps, "format", "values"),
    )
    yield (
        "serialization.loads(format, buf, offset)",
        loads is not None and _takes(loads, "format", "buf", "offset"),
    )


def missing() -> list[str]:
    """What the installed py-amqp lacks of what the driver relies on (empty: nothing)."""
    return [what for what, present in _reliances() if not present]


def check() -> None:
    """Raise :class:`UnsupportedPyAmqp` unless py-amqp has all the driver relies on."""
    absent = missing()
    if absent:
        raise UnsupportedPyAmqp(getattr(amqp, "__version__", "(unknown version)"), absent)


check()


# -- connection set-up ----------------------------------------------------------------------


class _StayClosedChannel(amqp.Channel):
    """A py-amqp channel that stays closed when the broker closes it.

    A link treats a closed channel as a broken connection and rebuilds
    everything from scratch. Bodies stay bytes: the driver never decodes them.
    """

    def __init__(self, connection: Any, channel_id: Any = None, **kwargs: Any) -> None:
        kwargs["auto_decode"] = False
        super().__init__(connection, channel_id, **kwargs)

    def _do_revive(self) -> None:
        self.is_open = False


def keep_channels_closed(conn: amqp.Connection) -> None:
    """Make the channels ``conn`` opens from now on stay closed once the broker closes them."""
    conn.Channel = _StayClosedChannel


def transport_of(conn: amqp.Connection | None) -> Any:
    """The connection's py-amqp transport, or None once py-amqp dropped it (never reconnects)."""
    return getattr(conn, "_transport", None)


def socket_of(conn: amqp.Connection | None) -> socket.socket | None:
    """The connection's socket, or None once py-amqp dropped its transport."""
    return getattr(transport_of(conn), "sock", None)


def read_ahead(conn: amqp.Connection, size: int) -> None:
    """Make each socket read take up to ``size`` bytes, the surplus staying buffered.

    py-amqp asks the socket for exactly one frame part at a time; taking
    whatever is there saves a poll and two recv calls per frame.
    """
    transport = conn.transport
    quick_recv = transport._quick_recv
    transport._quick_recv = lambda n: quick_recv(max(n, size))


def wrap_io(
    conn: amqp.Connection,
    write: Callable[[Callable[[Any], Any]], Callable[[Any], Any]],
    read: Callable[[Callable[[int], bytes]], Callable[[int], bytes]] | None = None,
) -> None:
    """Put ``write(original)`` in place of the socket write, ``read(original)`` of the read."""
    transport = conn.transport
    transport._write = write(transport._write)
    if read is not None:
        transport._quick_recv = read(transport._quick_recv)


# -- reading ----------------------------------------------------------------------------------


class Inbound:
    """py-amqp's inbound side of one connection: its read buffer and frame handler.

    What :class:`~rpcframe.drivers.amqp.frames.FrameReader` reads through;
    a test hands the reader an object with the same methods instead.
    """

    __slots__ = ("_conn", "_transport")

    def __init__(self, conn: amqp.Connection) -> None:
        self._conn = conn
        self._transport = conn.transport

    def intercept(self, handler: Callable[[Frame], Any]) -> Callable[[Frame], Any]:
        """Have py-amqp hand every frame it reads to ``handler``; returns py-amqp's own."""
        py_amqp: Callable[[Frame], Any] = self._conn.on_inbound_frame
        self._conn.on_inbound_frame = handler
        return py_amqp

    def buffered(self) -> bytes:
        """What py-amqp has read from the socket and not yet parsed."""
        data: bytes = self._transport._read_buffer
        return data

    def keep(self, rest: bytes) -> None:
        """Leave ``rest`` as the unparsed bytes."""
        self._transport._read_buffer = rest

    def read(self, need: int) -> None:
        """Read until at least ``need`` bytes are buffered, taking what else has arrived.

        Raises what the socket raises; TimeoutError when its time limit passed
        first (what was read stays buffered).
        """
        transport = self._transport
        head = transport._read(need, True)
        transport._read_buffer = head + transport._read_buffer

    def closed(self) -> bool:
        """Whether py-amqp dropped the connection (a frame it handled closed it)."""
        return self._conn._transport is None

    def received(self, frames: int) -> None:
        """Count ``frames`` frames py-amqp did not see as traffic, for its heartbeat check."""
        self._conn.bytes_recv += frames


def note_received(conn: amqp.Connection) -> None:
    """Count one unit of inbound traffic on ``conn`` (heartbeat_tick takes it as life)."""
    conn.bytes_recv += 1


def buffered(conn: amqp.Connection | None) -> bool:
    """Whether py-amqp holds bytes of ``conn`` read but not yet parsed."""
    return bool(getattr(transport_of(conn), "_read_buffer", b""))


# -- writing ----------------------------------------------------------------------------------


class Content:
    """A message body with its already-encoded properties, as py-amqp's frame writer takes it."""

    __slots__ = ("body", "properties", "_encoded")

    def __init__(self, body: bytes, encoded_properties: bytes) -> None:
        self.body = body
        self.properties: dict[str, object] = {}
        self._encoded = encoded_properties

    def _serialize_properties(self) -> bytes:
        return self._encoded


def write_frame(
    conn: amqp.Connection,
    channel_id: int,
    method: tuple[int, int],
    arguments: bytes,
    content: Content | None = None,
) -> None:
    """Write one method frame (and its content) through py-amqp. The caller holds the I/O lock."""
    conn.frame_writer(1, channel_id, method, arguments, content)


def on_return(channel: amqp.Channel, callback: Callable[[Any, str, str, Any], None]) -> None:
    """Have ``callback(exc, exchange, routing_key, message)`` called per message returned."""
    channel.events["basic_return"].add(callback)


# -- the AMQP codec ----------------------------------------------------------------------------


def encode(kinds: str, values: tuple[Any, ...]) -> bytes:
    """AMQP-encoded ``values``; ``kinds``: py-amqp's letters (``F`` table, ``s`` shortstr...)."""
    encoded: bytes = serialization.dumps(kinds, values)
    return encoded


def decode(kinds: str, buf: bytes, offset: int) -> tuple[list[Any], int]:
    """The AMQP-encoded values at ``buf[offset:]``, and the offset after them.

    Raises on malformed input.
    """
    values, end = serialization.loads(kinds, buf, offset)
    return values, end


def decode_table(buf: bytes, offset: int) -> dict[str, Any]:
    """The AMQP field table at ``buf[offset:]``; raises on malformed input."""
    table: dict[str, Any] = decode("F", buf, offset)[0][0]
    return table
