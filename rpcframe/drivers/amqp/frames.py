"""Frames on the hot path: pre-encoded publishes, and a fast reader.

Writing
-------

Every message rpcframe publishes carries the same few AMQP properties
(oslo.messaging's: JSON content type, UTF-8, persistent delivery, priority
0), plus an optional ``expiration``, for mandatory messages a
``message_id``, and with ``kombu_compression`` kombu's ``compression``
header. Encoding them, and the ``basic.publish`` arguments of a
route, once instead of per message takes a noticeable share off the cost of
a call. :class:`Outgoing` carries a body with its encoded properties to
py-amqp's frame writer (:class:`~rpcframe.drivers.amqp.pyamqp.Content`).

Reading
-------
py-amqp turns every frame it reads into Python objects through several
layers (frame handler, ``Message``, property decoding, channel dispatch).
The frames a busy connection mostly carries need none of that: a delivery
to a consumer is a delivery tag, a body and, rarely, application headers
(a stream's offset, kombu's compression; the empty table kombu always
sends is not decoded), a publisher confirm a tag.
:class:`FrameReader` parses those straight from the read buffer and hands
every other frame to py-amqp unchanged, so the rest of the protocol
(channel and connection close, returns, cancels, heartbeats) stays
py-amqp's. It reads py-amqp's buffer and hooks its frame handler through
:class:`~rpcframe.drivers.amqp.pyamqp.Inbound`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import amqp.exceptions

from rpcframe.drivers.amqp import pyamqp

__all__ = [
    "HEADERS_FLAG_HIGH",
    "FrameReader",
    "Outgoing",
    "PendingContent",
    "ack",
    "decode_headers",
    "encode_properties",
    "encode_publish",
    "frame",
    "publish",
    "publish_arguments",
    "split",
    "with_message_id",
]

# AMQP 0-9-1 method ids (class, method).
_PUBLISH = (60, 40)
_ACK = (60, 80)
_ACK_ARGS = struct.Struct(">QB")  # delivery-tag, multiple

# Property flag bits (AMQP 0-9-1 basic class), first property in the top bit.
_CONTENT_TYPE = 1 << 15
_CONTENT_ENCODING = 1 << 14
_DELIVERY_MODE = 1 << 12
_PRIORITY = 1 << 11
_HEADERS = 1 << 13
#: The ``headers`` flag in the first byte of the property flags.
HEADERS_FLAG_HIGH = _HEADERS >> 8
_EXPIRATION = 1 << 8
_MESSAGE_ID = 1 << 7


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">B", len(raw)) + raw


_TYPES = _shortstr("application/json") + _shortstr("utf-8")
_MODES = struct.pack(">BB", 2, 0)  # persistent, priority 0
_FIXED = _TYPES + _MODES
_FIXED_FLAGS = _CONTENT_TYPE | _CONTENT_ENCODING | _DELIVERY_MODE | _PRIORITY


@functools.lru_cache(maxsize=256)
def _expiring(expiration: str | None) -> bytes:
    if expiration is None:
        return struct.pack(">H", _FIXED_FLAGS) + _FIXED
    return struct.pack(">H", _FIXED_FLAGS | _EXPIRATION) + _FIXED + _shortstr(expiration)


@functools.lru_cache(maxsize=256)
def _with_headers(expiration: str | None, headers: bytes) -> bytes:
    flags = _FIXED_FLAGS | _HEADERS | (_EXPIRATION if expiration is not None else 0)
    encoded = struct.pack(">H", flags) + _TYPES + headers + _MODES
    return encoded if expiration is None else encoded + _shortstr(expiration)


@functools.lru_cache(maxsize=16)
def encode_headers(headers: tuple[tuple[str, str], ...]) -> bytes:
    """An AMQP field table of string values (the ``headers`` property)."""
    return pyamqp.encode("F", (dict(headers),))


def encode_properties(
    expiration: str | None = None, message_id: str | None = None, headers: bytes | None = None
) -> bytes:
    """The encoded basic properties of one message, as kombu would send them.

    ``headers`` is an :func:`encode_headers` table.
    """
    encoded = _expiring(expiration) if headers is None else _with_headers(expiration, headers)
    return encoded if message_id is None else with_message_id(encoded, message_id)


def with_message_id(properties: bytes, message_id: str) -> bytes:
    """``properties`` made by :func:`encode_properties` without a ``message_id``, with one."""
    flags = struct.unpack_from(">H", properties)[0] | _MESSAGE_ID
    return struct.pack(">H", flags) + properties[2:] + _shortstr(message_id)


#: A message body with its already-encoded properties.
Outgoing = pyamqp.Content


@functools.lru_cache(maxsize=1024)
def publish_arguments(exchange: str, routing_key: str, mandatory: bool) -> bytes:
    """The encoded arguments of a ``basic.publish`` method."""
    return pyamqp.encode("Bssbb", (0, exchange, routing_key, mandatory, False))


def ack(connection: amqp.Connection, channel_id: int, delivery_tag: int) -> None:
    """Write one ``basic.ack`` (not multiple). The caller holds the I/O lock."""
    pyamqp.write_frame(connection, channel_id, _ACK, _ACK_ARGS.pack(delivery_tag, 0))


def publish(
    connection: amqp.Connection, channel_id: int, arguments: bytes, message: Outgoing
) -> None:
    """Write one ``basic.publish`` with its content. The caller holds the I/O lock."""
    pyamqp.write_frame(connection, channel_id, _PUBLISH, arguments, message)


_PUBLISH_METHOD = struct.pack(">HH", *_PUBLISH)
_CONTENT_HEADER = struct.Struct(">HHQ")  # class-id, weight, body size


def encode_publish(
    channel_id: int, arguments: bytes, properties: bytes, body: bytes, frame_max: int
) -> bytes:
    """The frames of one ``basic.publish`` with its content, as py-amqp writes them.

    For a writer that does not go through py-amqp (a native thread in an
    eventlet-patched process): the method frame, the content header and the
    body in frames of at most ``frame_max`` bytes.
    """
    method = _PUBLISH_METHOD + arguments
    header = _CONTENT_HEADER.pack(60, 0, len(body)) + properties
    parts = [frame(1, channel_id, method), frame(2, channel_id, header)]
    chunk = frame_max - 8
    parts.extend(frame(3, channel_id, body[i : i + chunk]) for i in range(0, len(body), chunk))
    return b"".join(parts)


def frame(kind: int, channel_id: int, payload: bytes) -> bytes:
    """One frame: its type, channel and size, the payload and the frame end."""
    return struct.pack(">BHI", kind, channel_id, len(payload)) + payload + b"\xce"


# -- reading ----------------------------------------------------------------------------

#: A handler of deliveries on one channel: (delivery tag, body, application
#: headers or None when there are none).
OnDelivery = Callable[[int, bytes, "dict[str, Any] | None"], None]
#: A handler of confirms on one channel: (delivery tag, multiple).
OnConfirm = Callable[[int, bool], None]

_METHOD, _HEADER, _BODY = 1, 2, 3
_FRAME_END = 0xCE
_DELIVER = (60 << 16) | 60
_CONFIRM_ACK = (60 << 16) | 80
_CONFIRM_NACK = (60 << 16) | 120
_HEAD = struct.Struct(">BHI")  # type, channel, size
_SIZE = struct.Struct(">I")
_TAG = struct.Struct(">Q")
_TAG_BITS = struct.Struct(">QB")


def split(buf: bytes) -> Iterator[tuple[int, int, int, int]]:
    """The whole frames at the start of ``buf``: (type, channel, payload start, payload end).

    The next frame starts after the frame end byte, at payload end + 1.
    Raises UnexpectedFrame for a frame whose end byte is wrong.
    """
    unpack_head = _HEAD.unpack_from
    pos, length = 0, len(buf)
    while length - pos >= 8:
        kind, channel, size = unpack_head(buf, pos)
        end = pos + 7 + size
        if end >= length:
            return
        if buf[end] != _FRAME_END:
            raise amqp.exceptions.UnexpectedFrame(
                f"Received frame_end {buf[end]:#04x} while expecting 0xce"
            )
        yield kind, channel, pos + 7, end
        pos = end + 1


class PendingContent:
    """A delivery whose header and body frames are still coming."""

    __slots__ = ("handler", "tag", "size", "parts", "received", "headers")

    def __init__(self, handler: OnDelivery, tag: int) -> None:
        self.handler = handler
        self.tag = tag
        self.size = -1
        self.parts: list[bytes] = []
        self.received = 0
        self.headers: dict[str, Any] | None = None

    def on_header(self, buf: bytes, start: int) -> bytes | None:
        """Take the content header frame at ``buf[start:]``; the body if that is all (empty)."""
        # class-id, weight, then the body size and the property flags
        self.size = _TAG.unpack_from(buf, start + 4)[0]
        if buf[start + 12] & HEADERS_FLAG_HIGH:
            self.headers = decode_headers(buf, start + 14, buf[start + 12] << 8)
        return b"".join(self.parts) if self.received >= self.size else None

    def on_body(self, buf: bytes, start: int, end: int) -> bytes | None:
        """Take the body frame ``buf[start:end]``; the whole body once it is all there."""
        if not self.parts and end - start == self.size:
            return buf[start:end]  # the usual case: a body in one frame
        self.parts.append(buf[start:end])
        self.received += end - start
        return b"".join(self.parts) if self.received >= self.size >= 0 else None


class FrameReader:
    """Reads one py-amqp connection's frames; see the module documentation.

    Made per connection, before anyone reads it; from then on every frame
    of the connection passes through it, whether :meth:`pump` read it or
    one of py-amqp's synchronous methods did (a delivery's frames may be
    split between the two). ``on_delivery`` and ``on_confirm`` name the
    channels whose deliveries and confirms it handles itself. Not
    thread-safe: the connection's reader uses it, under the I/O lock.
    """

    def __init__(self, inbound: pyamqp.Inbound) -> None:
        #: py-amqp's side of the connection (its read buffer).
        self.inbound = inbound
        self._deliveries: dict[int, OnDelivery] = {}
        self._confirms: dict[int, tuple[OnConfirm, OnConfirm]] = {}
        self._content: dict[int, PendingContent] = {}
        self._py_amqp = inbound.intercept(self._on_frame)

    def on_delivery(self, channel_id: int, handler: OnDelivery) -> None:
        self._deliveries[channel_id] = handler

    def on_confirm(self, channel_id: int, on_ack: OnConfirm, on_nack: OnConfirm) -> None:
        self._confirms[channel_id] = (on_ack, on_nack)

    def pump(self) -> int:
        """Handle every whole frame buffered, reading the socket once if none is.

        Blocks until one whole frame is there (the caller polled first).
        Returns how many frames were handled. Raises what the socket or
        py-amqp raise; TimeoutError if the socket's time limit passed first
        (what was read stays buffered).
        """
        buf = self._whole_frame()
        inbound, handle, py_amqp = self.inbound, self._handle, self._py_amqp
        pos, handled, passed_on = 0, 0, 0
        try:
            for kind, channel, start, end in split(buf):
                pos = end + 1
                handled += 1
                if not handle(kind, channel, buf, start, end):
                    passed_on += 1
                    py_amqp((kind, channel, buf[start:end]))
                    if inbound.closed():  # that frame closed the connection
                        break
        finally:
            inbound.keep(buf[pos:])
            # py-amqp counts the frames it handles; the others count too.
            if handled > passed_on:
                inbound.received(handled - passed_on)
        return handled

    def _on_frame(self, frame: tuple[int, int, bytes]) -> Any:
        """A frame py-amqp read itself (in one of its synchronous methods)."""
        kind, channel, payload = frame
        if not self._handle(kind, channel, payload, 0, len(payload)):
            return self._py_amqp(frame)
        self.inbound.received(1)
        return None

    def _handle(self, kind: int, channel: int, buf: bytes, start: int, end: int) -> bool:
        """Handle the frame ``buf[start:end]`` if it is a hot one; False if not."""
        if kind == _METHOD:
            method = _SIZE.unpack_from(buf, start)[0]
            if method == _DELIVER:
                handler = self._deliveries.get(channel)
                if handler is None:
                    return False
                # consumer-tag (short string), then the delivery-tag
                tag = _TAG.unpack_from(buf, start + 5 + buf[start + 4])[0]
                self._content[channel] = PendingContent(handler, tag)
            elif method in (_CONFIRM_ACK, _CONFIRM_NACK):
                confirm = self._confirms.get(channel)
                if confirm is None:
                    return False
                tag, bits = _TAG_BITS.unpack_from(buf, start + 4)
                confirm[method == _CONFIRM_NACK](tag, bool(bits & 1))
                return True
            else:
                return False
        elif kind in (_HEADER, _BODY):
            pending = self._content.get(channel)
            if pending is None:
                return False
            if kind == _HEADER:
                body = pending.on_header(buf, start)
            else:
                body = pending.on_body(buf, start, end)
            if body is not None:
                del self._content[channel]
                pending.handler(pending.tag, body, pending.headers)
                return True
        else:
            return False
        return True

    def _whole_frame(self) -> bytes:
        """The read buffer, once it holds at least one whole frame."""
        inbound = self.inbound
        while True:
            buf = inbound.buffered()
            need = 8 + _SIZE.unpack_from(buf, 3)[0] if len(buf) >= 7 else 8
            if len(buf) >= need:
                return bytes(buf)
            # py-amqp reads what is missing (and whatever else has arrived)
            # and keeps the surplus buffered.
            inbound.read(need)


#: What a malformed property list makes the decoding raise.
_MALFORMED = (
    struct.error,
    IndexError,
    KeyError,
    ValueError,
    TypeError,
    amqp.exceptions.AMQPError,
)


def decode_headers(buf: bytes, pos: int, flags: int) -> dict[str, Any] | None:
    """The ``headers`` table of the properties at ``buf[pos:]``; None if empty.

    A table that cannot be decoded counts as none: the body still reaches
    its consumer, which refuses it if it is malformed too.
    """
    try:
        if flags & _CONTENT_TYPE:
            pos += 1 + buf[pos]
        if flags & _CONTENT_ENCODING:
            pos += 1 + buf[pos]
        if not _SIZE.unpack_from(buf, pos)[0]:
            return None
        return pyamqp.decode_table(buf, pos)
    except _MALFORMED:
        return None


def reader_of(connection: Any) -> FrameReader:
    """The FrameReader of a connection made by a link."""
    reader: FrameReader = connection.rpcframe_frames
    return reader
