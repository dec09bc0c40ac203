"""AMQP 0-9-1 on an :class:`asyncio.Protocol`: the connection of the asyncio RabbitMQ driver.

The driver needs a small part of AMQP: log in, open channels, declare
exchanges and queues, bind, consume, publish (with publisher confirms and
mandatory returns), acknowledge, and heartbeats. This module speaks exactly
that, with the threaded driver's frame codec: publishes are the frames of
:func:`~rpcframe.drivers.amqp.frames.encode_publish` with pre-encoded
properties, deliveries and confirms are parsed straight from the received
bytes, and every other method's arguments go through py-amqp's
serialization (:mod:`rpcframe.drivers.amqp.pyamqp`).

Nothing on the hot path is a coroutine or a task: a received frame calls
the channel's handler in the protocol's ``data_received``; a publish writes
and, on a confirm channel, returns the future of its confirm; an
acknowledgement is a write. Writes made in one turn of the loop leave in one
``transport.write`` (a server's ack and its reply, many callers' requests).

Synchronous methods (declarations, ``basic.consume``, ``channel.open``...)
are awaited one at a time per channel, as AMQP asks. The broker closing a
channel fails what waits on it with :class:`ChannelClosed` (a subclass per
reply code the driver tells apart); the connection dropping, or the broker
closing it, fails everything with :class:`ConnectionLost`.

Heartbeats: the interval is negotiated from the client's (RabbitMQ's
``heartbeat`` in ``connection.tune-ok``); a heartbeat frame leaves when
nothing else did for half an interval, and a broker silent for a whole
interval (two of its heartbeats missed) is taken for dead: the transport is
aborted and the connection is lost.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import ssl
import struct
from collections.abc import Callable
from typing import Any

import amqp.exceptions

from rpcframe.drivers.amqp import frames, pyamqp

__all__ = [
    "AMQPError",
    "AccessRefused",
    "Channel",
    "ChannelClosed",
    "Connection",
    "ConnectionLost",
    "LoginRefused",
    "Nacked",
    "NotFound",
    "PreconditionFailed",
    "ProtocolError",
    "Returned",
    "connect",
]

LOG = logging.getLogger(__name__)

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"

#: The largest frame the client asks for (RabbitMQ's default).
FRAME_MAX = 131072

# -- errors -------------------------------------------------------------------------------


class AMQPError(Exception):
    """Something failed in the conversation with the broker."""


class ProtocolError(AMQPError):
    """The broker sent what AMQP 0-9-1 does not allow here."""


class ConnectionLost(AMQPError):
    """The connection is gone: the socket dropped, heartbeats stopped, or the broker closed it."""

    def __init__(self, text: str, code: int = 0) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class LoginRefused(ConnectionLost):
    """The broker refused the login (ACCESS_REFUSED), or the virtual host (NOT_ALLOWED)."""


class ChannelClosed(AMQPError):
    """The broker closed a channel: ``code`` and ``text`` are its reply code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text

    @staticmethod
    def of(code: int, text: str) -> ChannelClosed:
        kind = _CHANNEL_ERRORS.get(code, ChannelClosed)
        return kind(code, text)


class AccessRefused(ChannelClosed):
    """403: the user may not do that (a channel-level refusal)."""


class NotFound(ChannelClosed):
    """404: no such exchange or queue."""


class PreconditionFailed(ChannelClosed):
    """406: it exists with other settings (``PRECONDITION_FAILED - inequivalent arg ...``)."""


_CHANNEL_ERRORS: dict[int, type[ChannelClosed]] = {
    403: AccessRefused,
    404: NotFound,
    406: PreconditionFailed,
}


class Returned(AMQPError):
    """The broker returned a mandatory message: no queue was bound to its route."""

    def __init__(self, code: int, text: str, exchange: str, routing_key: str) -> None:
        super().__init__(f"{code} {text} ({exchange!r}/{routing_key!r})")
        self.code = code
        self.text = text
        self.exchange = exchange
        self.routing_key = routing_key


class Nacked(AMQPError):
    """The broker refused to take responsibility for a message (``basic.nack``)."""


# -- frames -------------------------------------------------------------------------------

_METHOD, _HEADER, _BODY, _HEARTBEAT = 1, 2, 3, 8
_HEAD = struct.Struct(">BHI")  # type, channel, size
_METHOD_ID = struct.Struct(">I")
_TAG = struct.Struct(">Q")
_TAG_BITS = struct.Struct(">QB")
_HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"


#: What decoding a frame the broker got wrong raises.
_MALFORMED = (
    ProtocolError,
    amqp.exceptions.UnexpectedFrame,
    struct.error,
    IndexError,
    ValueError,
    UnicodeDecodeError,
)


def _method_id(class_id: int, method_id: int) -> int:
    return (class_id << 16) | method_id


# Connection class.
_START, _START_OK = _method_id(10, 10), _method_id(10, 11)
_TUNE, _TUNE_OK = _method_id(10, 30), _method_id(10, 31)
_OPEN, _OPEN_OK = _method_id(10, 40), _method_id(10, 41)
_CLOSE, _CLOSE_OK = _method_id(10, 50), _method_id(10, 51)
_BLOCKED, _UNBLOCKED = _method_id(10, 60), _method_id(10, 61)
# Channel class.
_CHANNEL_OPEN, _CHANNEL_OPEN_OK = _method_id(20, 10), _method_id(20, 11)
_FLOW, _FLOW_OK = _method_id(20, 20), _method_id(20, 21)
_CHANNEL_CLOSE, _CHANNEL_CLOSE_OK = _method_id(20, 40), _method_id(20, 41)
# Exchange, queue, confirm.
_EXCHANGE_DECLARE, _EXCHANGE_DECLARE_OK = _method_id(40, 10), _method_id(40, 11)
_QUEUE_DECLARE, _QUEUE_DECLARE_OK = _method_id(50, 10), _method_id(50, 11)
_QUEUE_BIND, _QUEUE_BIND_OK = _method_id(50, 20), _method_id(50, 21)
_QUEUE_DELETE, _QUEUE_DELETE_OK = _method_id(50, 40), _method_id(50, 41)
_SELECT, _SELECT_OK = _method_id(85, 10), _method_id(85, 11)
# Basic class.
_QOS, _QOS_OK = _method_id(60, 10), _method_id(60, 11)
_CONSUME, _CONSUME_OK = _method_id(60, 20), _method_id(60, 21)
_CANCEL, _CANCEL_OK = _method_id(60, 30), _method_id(60, 31)
_RETURN = _method_id(60, 50)
_DELIVER = _method_id(60, 60)
_ACK = _method_id(60, 80)
_REJECT = _method_id(60, 90)
_NACK = _method_id(60, 120)

_REPLY_SUCCESS = 200
_CLOSE_ARGUMENTS = pyamqp.encode("BsBB", (_REPLY_SUCCESS, "", 0, 0))
_ACCESS_REFUSED = 403
_NOT_ALLOWED = 530

#: Basic properties in the order of their flag bits (the first in the top bit).
_PROPERTIES = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "L"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)


def _method(channel: int, method: int, arguments: bytes = b"") -> bytes:
    return frames.frame(_METHOD, channel, _METHOD_ID.pack(method) + arguments)


def decode_properties(buf: bytes, pos: int) -> dict[str, Any]:
    """The basic properties of a content header, from its property flags at ``buf[pos:]``."""
    flags = struct.unpack_from(">H", buf, pos)[0]
    pos += 2
    kinds, names = [], []
    for bit, (name, kind) in enumerate(_PROPERTIES):
        if flags & (1 << (15 - bit)):
            kinds.append(kind)
            names.append(name)
    values = pyamqp.decode("".join(kinds), buf, pos)[0] if kinds else []
    return dict(zip(names, values, strict=True))


# -- content ------------------------------------------------------------------------------

#: A consumer's handler: (delivery tag, body, application headers or None).
OnDelivery = frames.OnDelivery
#: What a broker cancelling a consumer calls: (consumer tag).
OnCancel = Callable[[str], None]


class _Content(frames.PendingContent):
    """A delivery or a return whose header and body frames are still coming."""

    __slots__ = ("returned",)

    def __init__(self, handler: OnDelivery, tag: int, returned: Returned | None) -> None:
        super().__init__(handler, tag)
        self.returned = returned

    def on_header(self, buf: bytes, start: int) -> bytes | None:
        body = super().on_header(buf, start)
        if self.returned is not None:
            # A returned message's tag is its message_id (Channel.publish, tagged).
            message_id = decode_properties(buf, start + 12).get("message_id")
            self.tag = int(message_id) if message_id and message_id.isdigit() else 0
        return body


class Channel:
    """One AMQP channel; made by :meth:`Connection.channel`.

    ``confirms``: the channel is in confirm mode, and :meth:`publish`
    returns the future of each message's confirm.
    """

    def __init__(self, connection: Connection, channel_id: int) -> None:
        self.connection = connection
        self.id = channel_id
        self.confirms = False
        #: Why the channel closed (None while it is open).
        self.error: AMQPError | None = None
        self._loop = connection.loop
        self._write = connection.write
        self._lock = asyncio.Lock()
        self._replies: collections.deque[tuple[int, asyncio.Future[tuple[bytes, int]]]] = (
            collections.deque()
        )
        self._consumers: dict[str, tuple[OnDelivery, OnCancel | None]] = {}
        self._content: _Content | None = None
        self._next_tag = 1
        self._unconfirmed: dict[int, asyncio.Future[None]] = {}
        self._returned: dict[int, Returned] = {}
        self._consumer_count = 0

    @property
    def is_closed(self) -> bool:
        return self.error is not None

    def __repr__(self) -> str:
        return f"<Channel {self.id} of {self.connection.name}{' closed' if self.error else ''}>"

    # -- synchronous methods ------------------------------------------------------------

    async def _call(self, method: int, arguments: bytes, reply: int) -> tuple[bytes, int]:
        """Send a synchronous method and wait for its reply: (frame buffer, arguments' offset)."""
        async with self._lock:
            if self.error is not None:
                raise self.error
            future = self._loop.create_future()
            self._replies.append((reply, future))
            self._write(_method(self.id, method, arguments))
            return await future

    async def open(self) -> None:
        await self._call(_CHANNEL_OPEN, pyamqp.encode("s", ("",)), _CHANNEL_OPEN_OK)

    async def select_confirms(self) -> None:
        await self._call(_SELECT, pyamqp.encode("b", (False,)), _SELECT_OK)
        self.confirms = True

    async def qos(self, prefetch_count: int) -> None:
        await self._call(_QOS, pyamqp.encode("lBb", (0, prefetch_count, False)), _QOS_OK)

    async def exchange_declare(
        self,
        name: str,
        kind: str,
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
    ) -> None:
        arguments = pyamqp.encode(
            "BssbbbbbF", (0, name, kind, passive, durable, auto_delete, False, False, {})
        )
        await self._call(_EXCHANGE_DECLARE, arguments, _EXCHANGE_DECLARE_OK)

    async def queue_declare(
        self,
        name: str,
        *,
        durable: bool = False,
        auto_delete: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> None:
        encoded = pyamqp.encode(
            "BsbbbbbF", (0, name, False, durable, False, auto_delete, False, arguments or {})
        )
        await self._call(_QUEUE_DECLARE, encoded, _QUEUE_DECLARE_OK)

    async def queue_bind(self, queue: str, exchange: str, routing_key: str) -> None:
        arguments = pyamqp.encode("BsssbF", (0, queue, exchange, routing_key, False, {}))
        await self._call(_QUEUE_BIND, arguments, _QUEUE_BIND_OK)

    async def queue_delete(self, name: str) -> None:
        arguments = pyamqp.encode("Bsbbb", (0, name, False, False, False))
        await self._call(_QUEUE_DELETE, arguments, _QUEUE_DELETE_OK)

    async def consume(
        self,
        queue: str,
        on_delivery: OnDelivery,
        *,
        no_ack: bool = False,
        arguments: dict[str, Any] | None = None,
        on_cancel: OnCancel | None = None,
    ) -> str:
        """Start a consumer of ``queue``; returns its consumer tag.

        ``on_delivery`` is called in the loop's ``data_received`` for every
        message; ``on_cancel`` when the broker cancels the consumer (its
        queue was deleted).
        """
        self._consumer_count += 1
        tag = f"{self.connection.name}.{self.id}.{self._consumer_count}"
        self._consumers[tag] = (on_delivery, on_cancel)
        encoded = pyamqp.encode(
            "BssbbbbF", (0, queue, tag, False, no_ack, False, False, arguments or {})
        )
        try:
            await self._call(_CONSUME, encoded, _CONSUME_OK)
        except BaseException:
            self._consumers.pop(tag, None)
            raise
        return tag

    async def cancel(self, consumer_tag: str) -> None:
        """Stop a consumer; deliveries already on the way still reach its handler."""
        await self._call(_CANCEL, pyamqp.encode("sb", (consumer_tag, False)), _CANCEL_OK)

    async def close(self) -> None:
        """Close the channel and wait for the broker's close-ok (a no-op once closed)."""
        if self.error is not None:
            return
        try:
            await self._call(_CHANNEL_CLOSE, _CLOSE_ARGUMENTS, _CHANNEL_CLOSE_OK)
        finally:
            self._closed(ChannelClosed(_REPLY_SUCCESS, "closed by the client"))

    def discard(self) -> None:
        """Close the channel without waiting (its number is free once the broker agrees)."""
        if self.error is not None:
            return
        self._closed(ChannelClosed(_REPLY_SUCCESS, "closed by the client"))
        if not self.connection.is_closed:
            self._write(_method(self.id, _CHANNEL_CLOSE, _CLOSE_ARGUMENTS))

    # -- asynchronous methods -----------------------------------------------------------

    def publish(
        self, arguments: bytes, properties: bytes, body: bytes, tagged: bool = False
    ) -> asyncio.Future[None] | None:
        """Publish one message; on a confirm channel, the future of its confirm.

        ``arguments`` are :func:`~rpcframe.drivers.amqp.frames.publish_arguments`,
        ``properties`` :func:`~rpcframe.drivers.amqp.frames.encode_properties`.
        ``tagged`` (a mandatory message, on a confirm channel): the
        properties are made here with the message's delivery tag as
        ``message_id``, so that a return fails the right confirm.
        """
        if self.error is not None:
            raise self.error
        future = None
        if self.confirms:
            tag = self._next_tag
            self._next_tag = tag + 1
            future = self._unconfirmed[tag] = self._loop.create_future()
            if tagged:
                properties = frames.with_message_id(properties, str(tag))
        self._write(
            frames.encode_publish(self.id, arguments, properties, body, self.connection.frame_max)
        )
        return future

    def ack(self, delivery_tag: int) -> None:
        if self.error is None:
            self._write(_method(self.id, _ACK, _TAG_BITS.pack(delivery_tag, 0)))

    def reject(self, delivery_tag: int, requeue: bool) -> None:
        if self.error is None:
            self._write(_method(self.id, _REJECT, _TAG_BITS.pack(delivery_tag, int(requeue))))

    # -- what the broker sends ----------------------------------------------------------

    def _method(self, method: int, buf: bytes, pos: int) -> None:
        if method == _DELIVER:
            # consumer-tag (short string), then the delivery-tag
            end = pos + 1 + buf[pos]
            consumer = self._consumers.get(buf[pos + 1 : end].decode())
            handler = consumer[0] if consumer is not None else self._drop
            self._content = _Content(handler, _TAG.unpack_from(buf, end)[0], None)
        elif method in (_ACK, _NACK):
            tag, bits = _TAG_BITS.unpack_from(buf, pos)
            self._confirmed(tag, bool(bits & 1), method == _NACK)
        elif method == _RETURN:
            code, text, exchange, routing_key = pyamqp.decode("Bsss", buf, pos)[0]
            self._content = _Content(self._drop, 0, Returned(code, text, exchange, routing_key))
        elif method == _CANCEL:
            self._cancelled(pyamqp.decode("s", buf, pos)[0][0])
        elif method == _CHANNEL_CLOSE:
            code, text = pyamqp.decode("Bs", buf, pos)[0]
            self._write(_method(self.id, _CHANNEL_CLOSE_OK))
            self._closed(ChannelClosed.of(code, text))
            self.connection.forget(self)
        elif method == _FLOW:
            active = pyamqp.decode("b", buf, pos)[0][0]
            self._write(_method(self.id, _FLOW_OK, pyamqp.encode("b", (active,))))
        else:
            self._reply(method, buf, pos)

    def _reply(self, method: int, buf: bytes, pos: int) -> None:
        if self.error is not None:
            # Closed on our side: the broker's last answers, then its close-ok.
            if method == _CHANNEL_CLOSE_OK:
                self.connection.forget(self)
            return
        if not self._replies:
            raise ProtocolError(f"unexpected method {method >> 16}.{method & 0xFFFF} on {self!r}")
        expected, future = self._replies.popleft()
        if method != expected:
            raise ProtocolError(
                f"{self!r} expected method {expected >> 16}.{expected & 0xFFFF}, got "
                f"{method >> 16}.{method & 0xFFFF}"
            )
        if not future.done():
            future.set_result((buf, pos))

    def _header(self, buf: bytes, start: int, end: int) -> None:
        content = self._content
        if content is None:
            raise ProtocolError(f"a content header without a method on {self!r}")
        body = content.on_header(buf, start)
        if body is not None:
            self._delivered(content, body)

    def _body(self, buf: bytes, start: int, end: int) -> None:
        content = self._content
        if content is None or content.size < 0:
            raise ProtocolError(f"a content body without a header on {self!r}")
        body = content.on_body(buf, start, end)
        if body is not None:
            self._delivered(content, body)

    def _delivered(self, content: _Content, body: bytes) -> None:
        self._content = None
        if content.returned is not None:
            if content.tag in self._unconfirmed:
                self._returned[content.tag] = content.returned
            else:
                LOG.debug("%r: a message was returned (%s)", self, content.returned)
        else:
            content.handler(content.tag, body, content.headers)

    def _drop(self, tag: int, body: bytes, headers: dict[str, Any] | None) -> None:
        """The handler of a delivery to a consumer cancelled meanwhile."""
        LOG.debug("%r: dropping delivery %d of a cancelled consumer", self, tag)

    def _confirmed(self, tag: int, multiple: bool, nacked: bool) -> None:
        unconfirmed = self._unconfirmed
        if multiple:
            tags = []
            for pending in unconfirmed:
                if pending > tag:
                    break
                tags.append(pending)
        else:
            tags = [tag]
        for pending in tags:
            future = unconfirmed.pop(pending, None)
            if future is None or future.done():
                continue
            returned = self._returned.pop(pending, None) if self._returned else None
            if returned is not None:
                future.set_exception(returned)
            elif nacked:
                future.set_exception(Nacked(f"RabbitMQ refused message {pending} on {self!r}"))
            else:
                future.set_result(None)

    def _cancelled(self, consumer_tag: str) -> None:
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is not None and consumer[1] is not None:
            consumer[1](consumer_tag)

    def _closed(self, error: AMQPError) -> None:
        """Fail everything that waits on the channel (once)."""
        if self.error is not None:
            return
        self.error = error
        self._consumers.clear()
        replies, self._replies = self._replies, collections.deque()
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        waiting: list[asyncio.Future[Any]] = [future for _, future in replies]
        waiting.extend(unconfirmed.values())
        for future in waiting:
            if not future.done():
                future.set_exception(error)


class Connection(asyncio.Protocol):
    """One AMQP connection; made by :func:`connect`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        name: str,
        login: tuple[str, bytes],
        virtual_host: str,
        heartbeat: int,
    ) -> None:
        self.loop = loop
        self.name = name
        self.frame_max = FRAME_MAX
        self.heartbeat = heartbeat
        #: Done (with the error, or None for a close of ours) once the connection is gone.
        self.closing: asyncio.Future[None] = loop.create_future()
        self._login = login
        self._virtual_host = virtual_host
        self._transport: asyncio.Transport | None = None
        self._opened: asyncio.Future[None] = loop.create_future()
        self._closed_ok: asyncio.Future[None] | None = None
        self._error: ConnectionLost | None = None
        self._channels: dict[int, Channel] = {}
        self._channel_max = 2047
        self._rest = bytearray()
        self._need = 0
        self._out: list[bytes] = []
        self._heard = True
        self._wrote = False
        self._silent = 0
        self._ticks = 0
        self._beat: asyncio.TimerHandle | None = None

    @property
    def is_closed(self) -> bool:
        return self._error is not None

    def __repr__(self) -> str:
        return f"<Connection {self.name}{' closed' if self._error else ''}>"

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        # Any: uvloop's transports do not derive from asyncio.Transport.
        self._transport = transport
        transport.write(PROTOCOL_HEADER)

    def data_received(self, data: bytes) -> None:
        self._heard = True
        rest = self._rest
        if rest:
            rest += data
            if len(rest) < self._need:
                return
            buf = bytes(rest)
            rest.clear()
        else:
            buf = data
        pos = 0
        try:
            for kind, channel, start, end in frames.split(buf):
                pos = end + 1
                self._frame(kind, channel, buf, start, end)
                if self._error is not None:
                    return
        except _MALFORMED as exc:
            self._abort(ConnectionLost(f"a malformed frame from RabbitMQ: {exc}"))
            return
        if pos < len(buf):
            rest += buf[pos:]
            self._need = 8 + _HEAD.unpack_from(rest)[2] if len(rest) >= 7 else 8

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if exc is not None:
            lost = ConnectionLost(f"{type(exc).__name__}: {exc}")
            lost.__cause__ = exc
        else:
            lost = ConnectionLost("the connection was closed")
        self._lost(self._error or lost)

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, kind: int, channel_id: int, buf: bytes, start: int, end: int) -> None:
        if kind == _HEARTBEAT:
            return
        if channel_id == 0:
            if kind != _METHOD:
                raise ProtocolError(f"frame type {kind} on channel 0")
            self._connection_method(_METHOD_ID.unpack_from(buf, start)[0], buf, start + 4)
            return
        channel = self._channels.get(channel_id)
        if channel is None:
            return  # a channel we closed: what was on the way is dropped
        if kind == _METHOD:
            channel._method(_METHOD_ID.unpack_from(buf, start)[0], buf, start + 4)
        elif kind == _BODY:
            channel._body(buf, start, end)
        elif kind == _HEADER:
            channel._header(buf, start, end)
        else:
            raise ProtocolError(f"frame type {kind} on channel {channel_id}")

    def _connection_method(self, method: int, buf: bytes, pos: int) -> None:
        if method == _START:
            self._start(buf, pos)
        elif method == _TUNE:
            self._tune(buf, pos)
        elif method == _OPEN_OK:
            if not self._opened.done():
                self._opened.set_result(None)
            self._schedule_beat()
        elif method == _CLOSE:
            code, text = pyamqp.decode("Bs", buf, pos)[0]
            self._write_now(_method(0, _CLOSE_OK))
            refused = not self._opened.done() and code in (_ACCESS_REFUSED, _NOT_ALLOWED)
            kind = LoginRefused if refused else ConnectionLost
            self._abort(kind(f"RabbitMQ closed the connection: {code} {text}", code))
        elif method == _CLOSE_OK:
            if self._closed_ok is not None and not self._closed_ok.done():
                self._closed_ok.set_result(None)
        elif method == _BLOCKED:
            LOG.warning("%s: RabbitMQ blocked the connection: %s", self.name,
                        pyamqp.decode("s", buf, pos)[0][0])  # fmt: skip
        elif method == _UNBLOCKED:
            LOG.info("%s: RabbitMQ unblocked the connection", self.name)
        else:
            raise ProtocolError(f"unexpected method {method >> 16}.{method & 0xFFFF} on channel 0")

    def _start(self, buf: bytes, pos: int) -> None:
        (_, _, _, mechanisms, _), _ = pyamqp.decode("ooFSS", buf, pos)
        mechanism, response = self._login
        if mechanism not in str(mechanisms).split():
            self._abort(
                LoginRefused(f"RabbitMQ does not offer login method {mechanism} ({mechanisms})")
            )
            return
        properties = {
            "product": "rpcframe",
            "connection_name": self.name,
            "capabilities": {
                "publisher_confirms": True,
                "consumer_cancel_notify": True,
                "basic.nack": True,
                "authentication_failure_close": True,
                "connection.blocked": True,
            },
        }
        arguments = pyamqp.encode("FsSs", (properties, mechanism, response, "en_US"))
        self._write_now(_method(0, _START_OK, arguments))

    def _tune(self, buf: bytes, pos: int) -> None:
        (channel_max, frame_max, heartbeat), _ = pyamqp.decode("BlB", buf, pos)
        self._channel_max = channel_max or 65535
        self.frame_max = min(frame_max, FRAME_MAX) if frame_max else FRAME_MAX
        if self.heartbeat and heartbeat:
            self.heartbeat = min(self.heartbeat, heartbeat)
        arguments = pyamqp.encode("BlB", (self._channel_max, self.frame_max, self.heartbeat))
        self._write_now(_method(0, _TUNE_OK, arguments))
        opening = pyamqp.encode("ssb", (self._virtual_host, "", False))
        self._write_now(_method(0, _OPEN, opening))

    # -- writing --------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` to leave with the rest of this turn of the loop's writes."""
        if self._error is not None:
            raise self._error
        out = self._out
        out.append(data)
        if len(out) == 1:
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        out = self._out
        if not out or self._transport is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._transport.write(data)
        self._wrote = True

    def _write_now(self, data: bytes) -> None:
        self._flush()
        if self._transport is not None:
            self._transport.write(data)
            self._wrote = True

    # -- heartbeats -----------------------------------------------------------------------

    def _schedule_beat(self) -> None:
        if self.heartbeat and self._error is None:
            self._beat = self.loop.call_later(self.heartbeat / 4, self._tick)

    def _tick(self) -> None:
        """Every quarter interval: beat if we were quiet, give up on a silent broker."""
        self._silent = 0 if self._heard else self._silent + 1
        self._heard = False
        if self._silent >= 4:
            self._abort(
                ConnectionLost(f"RabbitMQ sent nothing for {self.heartbeat} s (heartbeats missed)")
            )
            return
        self._ticks += 1
        if self._ticks % 2 == 0:
            if not self._wrote:
                self._write_now(_HEARTBEAT_FRAME)
            self._wrote = False
        self._schedule_beat()

    # -- channels -------------------------------------------------------------------------

    async def channel(self, confirms: bool = False) -> Channel:
        """A new open channel (in confirm mode with ``confirms``)."""
        if self._error is not None:
            raise self._error
        channel_id = next(
            (n for n in range(1, self._channel_max + 1) if n not in self._channels), None
        )
        if channel_id is None:
            raise AMQPError(f"{self!r} has no free channel (channel_max {self._channel_max})")
        channel = self._channels[channel_id] = Channel(self, channel_id)
        try:
            await channel.open()
            if confirms:
                await channel.select_confirms()
        except BaseException:
            # The broker may have opened it: the number stays taken until it closes.
            channel.discard()
            raise
        return channel

    def forget(self, channel: Channel) -> None:
        """The channel is closed both ways: its number may be used again."""
        if self._channels.get(channel.id) is channel:
            del self._channels[channel.id]

    # -- closing --------------------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """Close the connection with the broker's agreement (or at once after ``timeout``)."""
        if self._error is not None:
            return
        self._closed_ok = self.loop.create_future()
        try:
            self._write_now(_method(0, _CLOSE, _CLOSE_ARGUMENTS))
            async with asyncio.timeout(timeout):
                await self._closed_ok
        except (TimeoutError, AMQPError, OSError):
            pass
        finally:
            self._abort(ConnectionLost("the connection was closed by the client", _REPLY_SUCCESS))

    def _abort(self, error: ConnectionLost) -> None:
        if self._error is None:
            self._error = error
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.abort()
        self._lost(self._error)

    def _lost(self, error: ConnectionLost) -> None:
        if self._error is None:
            self._error = error
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        self._out.clear()
        channels, self._channels = self._channels, {}
        for channel in channels.values():
            channel._closed(error)
        if not self._opened.done():
            self._opened.set_exception(error)
            self._opened.exception()
        if not self.closing.done():
            if error.code == _REPLY_SUCCESS:
                self.closing.set_result(None)
            else:
                self.closing.set_exception(error)
                self.closing.exception()


def login(method: str, username: str, password: str) -> tuple[str, bytes]:
    """The mechanism and the response of ``connection.start-ok`` for a login method."""
    method = method.upper()
    if method == "PLAIN":
        return method, b"\0" + username.encode() + b"\0" + password.encode()
    if method == "AMQPLAIN":
        # A field table without its length prefix.
        return method, pyamqp.encode("F", ({"LOGIN": username, "PASSWORD": password},))[4:]
    if method == "EXTERNAL":
        return method, b""
    raise ValueError(f"unsupported login method {method!r}")


async def connect(
    host: str,
    port: int,
    *,
    name: str,
    login: tuple[str, bytes],
    virtual_host: str,
    heartbeat: int,
    ssl_context: ssl.SSLContext | None = None,
) -> Connection:
    """Connect to the broker and open an AMQP connection; the caller bounds it in time.

    Raises OSError (TCP and TLS, ``ssl.SSLCertVerificationError`` included),
    LoginRefused, ConnectionLost.
    """
    loop = asyncio.get_running_loop()
    connection = Connection(loop, name, login, virtual_host, heartbeat)
    try:
        await loop.create_connection(
            lambda: connection,
            host,
            port,
            ssl=ssl_context,
            server_hostname=host if ssl_context is not None else None,
        )
        await connection._opened
    except BaseException:
        connection._abort(ConnectionLost("the connection was not opened"))
        raise
    return connection
