"""Pre-encoded publish frames: the per-message work py-amqp would repeat.

Every message rpcframe publishes carries the same few AMQP properties
(oslo.messaging's: JSON content type, UTF-8, persistent delivery, priority
0), plus an optional ``expiration`` and, for mandatory messages, a
``message_id``. Encoding them, and the ``basic.publish`` arguments of a
route, once instead of per message takes a noticeable share off the cost of
a call. :class:`Outgoing` is the duck-typed "content" py-amqp's frame writer
accepts (``body`` and ``_serialize_properties``).
"""

from __future__ import annotations

import functools
import struct

from amqp import serialization, spec

__all__ = ["Outgoing", "ack", "encode_properties", "publish", "publish_arguments"]

_PUBLISH = spec.Basic.Publish
_ACK = spec.Basic.Ack
_ACK_ARGS = struct.Struct(">QB")  # delivery-tag, multiple

# Property flag bits (AMQP 0-9-1 basic class), first property in the top bit.
_CONTENT_TYPE = 1 << 15
_CONTENT_ENCODING = 1 << 14
_DELIVERY_MODE = 1 << 12
_PRIORITY = 1 << 11
_EXPIRATION = 1 << 8
_MESSAGE_ID = 1 << 7


def _shortstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">B", len(raw)) + raw


_FIXED = _shortstr("application/json") + _shortstr("utf-8") + struct.pack(">BB", 2, 0)
_FIXED_FLAGS = _CONTENT_TYPE | _CONTENT_ENCODING | _DELIVERY_MODE | _PRIORITY


@functools.lru_cache(maxsize=256)
def _expiring(expiration: str | None) -> bytes:
    if expiration is None:
        return struct.pack(">H", _FIXED_FLAGS) + _FIXED
    return struct.pack(">H", _FIXED_FLAGS | _EXPIRATION) + _FIXED + _shortstr(expiration)


def encode_properties(expiration: str | None = None, message_id: str | None = None) -> bytes:
    """The encoded basic properties of one message, as kombu would send them."""
    encoded = _expiring(expiration)
    if message_id is None:
        return encoded
    flags = struct.unpack_from(">H", encoded)[0] | _MESSAGE_ID
    return struct.pack(">H", flags) + encoded[2:] + _shortstr(message_id)


class Outgoing:
    """A message body with its already-encoded properties."""

    __slots__ = ("body", "properties", "_encoded")

    def __init__(self, body: bytes, encoded_properties: bytes) -> None:
        self.body = body
        self.properties: dict[str, object] = {}
        self._encoded = encoded_properties

    def _serialize_properties(self) -> bytes:
        return self._encoded


@functools.lru_cache(maxsize=1024)
def publish_arguments(exchange: str, routing_key: str, mandatory: bool) -> bytes:
    """The encoded arguments of a ``basic.publish`` method."""
    return serialization.dumps("Bssbb", (0, exchange, routing_key, mandatory, False))


def ack(connection: object, channel_id: int, delivery_tag: int) -> None:
    """Write one ``basic.ack`` (not multiple). The caller holds the I/O lock."""
    connection.frame_writer(1, channel_id, _ACK, _ACK_ARGS.pack(delivery_tag, 0), None)  # type: ignore[attr-defined]


def publish(connection: object, channel_id: int, arguments: bytes, message: Outgoing) -> None:
    """Write one ``basic.publish`` with its content. The caller holds the I/O lock."""
    connection.frame_writer(1, channel_id, _PUBLISH, arguments, message)  # type: ignore[attr-defined]
