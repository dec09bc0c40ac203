"""Where a message goes: record names for addresses, and inbox names.

The sender and the receiving process name a subscription the same way:
:func:`record_of` gives the name-service record of an address (and of a
received header, which carries the same fields). An inbox's name says where
it lives, ``reply_<id>@tcp://host:port``, so a reply needs no look-up.
"""

from __future__ import annotations

import functools
import uuid

from rpcframe.drivers import base
from rpcframe.drivers.zmq.matchmaker import record_key

__all__ = ["endpoint_of_inbox", "inbox_name", "record_of", "slot"]


# Every message sent and received names its record: kept for the names in use
# (a process has a few topics and inboxes), so each is encoded once.
@functools.lru_cache(maxsize=4096)
def record_of(kind: str, exchange: str, topic: str, server: str | None, fanout: bool) -> str:
    if kind == base.REPLY:
        return record_key("reply", topic)
    if kind == base.NOTIFY:
        return record_key("notify", exchange, topic)
    if fanout:
        # As on RabbitMQ, a fanout reaches the topic's servers in every exchange.
        return record_key("fanout", topic)
    if server:
        return record_key("rpc", exchange, topic, server)
    return record_key("rpc", exchange, topic)


def slot(record: str, pool: str | None) -> str:
    """The local subscription a message goes to: a record, and the pool for notifications."""
    return record if pool is None else f"{record}\x1f{pool}"


def inbox_name(endpoint: str) -> str:
    return f"reply_{uuid.uuid4().hex}@{endpoint}"


def endpoint_of_inbox(name: str) -> str | None:
    prefix, sep, endpoint = name.partition("@")
    if not sep or not prefix.startswith("reply_") or not endpoint.startswith("tcp://"):
        return None
    return endpoint
