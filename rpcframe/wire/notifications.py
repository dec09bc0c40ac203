"""Notification bodies: :class:`Notification`, the priorities, encoding and parsing.

A notification holds ``message_id``, ``publisher_id``, ``event_type``,
``priority`` (upper case), ``payload``, ``timestamp``, ``_unique_id`` and the
context as ``_context_<key>``; rpcframe adds ``_sender``. The
``messagingv2`` driver wraps it in the envelope, the older ``messaging``
driver sends it bare, and both are read.

Built on :mod:`~rpcframe.wire.envelope` and :mod:`~rpcframe.wire.context`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcframe import exceptions
from rpcframe.wire.context import pack_context, unpack_context
from rpcframe.wire.envelope import SENDER_KEY, decode, dumps, encode, new_id, optional_field

__all__ = ["PRIORITIES", "Notification", "encode_notification", "parse_notification"]

#: Notification priorities, lower case, in oslo.messaging's order.
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")


class Notification:
    """A parsed notification. ``priority`` is lower case, as endpoints name it.

    ``sender`` is the raw ``_sender`` value (None from peers that do not
    send one); ``message`` is everything that was received.
    """

    __slots__ = (
        "priority",
        "publisher_id",
        "event_type",
        "payload",
        "message_id",
        "timestamp",
        "context",
        "sender",
        "unique_id",
        "message",
    )

    def __init__(
        self,
        priority: str,
        publisher_id: str | None,
        event_type: str,
        payload: Any,
        message_id: Any,
        timestamp: Any,
        context: dict[str, Any],
        sender: Any,
        unique_id: str | None,
        message: dict[str, Any],
    ) -> None:
        self.priority = priority
        self.publisher_id = publisher_id
        self.event_type = event_type
        self.payload = payload
        self.message_id = message_id
        self.timestamp = timestamp
        self.context = context
        self.sender = sender
        self.unique_id = unique_id
        self.message = message

    def __repr__(self) -> str:
        return (
            f"<Notification {self.priority} {self.event_type!r} from {self.publisher_id!r} "
            f"id={self.message_id}>"
        )


def encode_notification(
    message: Mapping[str, Any],
    context: Any,
    *,
    envelope: bool = True,
    sender: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a notification body from a notifier's message dict.

    ``message`` holds ``message_id``, ``publisher_id``, ``event_type``,
    ``priority``, ``payload`` and ``timestamp``. With ``envelope`` false the
    body is the bare message (oslo.messaging's 1.0 ``messaging`` driver).
    Raises TypeError or ValueError for a value JSON cannot hold.
    """
    body = dict(message)
    body["_unique_id"] = new_id()
    if sender is not None:
        body[SENDER_KEY] = sender
    pack_context(body, context)
    if envelope:
        return encode(body)
    return dumps(body).encode()


def parse_notification(body: bytes | str) -> Notification:
    """Parse an enveloped (2.0) or bare (1.0) notification body.

    Raises MalformedMessage when the body is not a notification: no known
    ``priority``, an ``event_type`` that is not a string, a ``publisher_id``
    that is neither a string nor null.
    """
    message = decode(body)
    priority = message.get("priority")
    if not isinstance(priority, str):
        raise exceptions.MalformedMessage(
            "notification has no 'priority'"
            if priority is None
            else f"'priority' must be a string, got {type(priority).__name__}"
        )
    level = priority.lower()
    if level not in PRIORITIES:
        raise exceptions.MalformedMessage(f"unknown notification priority {priority!r}")
    event_type = message.get("event_type")
    if not isinstance(event_type, str):
        raise exceptions.MalformedMessage(
            "notification has no 'event_type'"
            if event_type is None
            else f"'event_type' must be a string, got {type(event_type).__name__}"
        )
    publisher_id = optional_field(message, "publisher_id", str)
    return Notification(
        level,
        publisher_id,
        event_type,
        message.get("payload"),
        message.get("message_id"),
        message.get("timestamp"),
        unpack_context(message),
        message.get(SENDER_KEY),
        message.get("_unique_id"),
        message,
    )
