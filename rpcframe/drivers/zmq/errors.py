"""What the ZeroMQ driver raises: backend exceptions mapped to rpcframe's, in one table.

pyzmq's and redis-py's exceptions never leave the driver. Those it gives up
on leave as an rpcframe exception chosen by :data:`MAPPING`, with the
backend's exception as ``__cause__``:

* ``zmq.ZMQError`` with ``EADDRINUSE``/``EADDRNOTAVAIL`` (no port to listen
  on): :class:`~rpcframe.exceptions.TransportBroken`, naming the address;
* any other ``zmq.ZMQError``: :class:`~rpcframe.exceptions.TransportBroken`;
* ``redis.AuthenticationError``: :class:`~rpcframe.exceptions.AuthenticationError`;
* any other ``redis.RedisError`` and ``OSError``: TransportBroken.

Conditions the driver detects itself stay what they are:
:class:`~rpcframe.exceptions.MessageUndeliverable` (no process listens on
the address, or every one answered ``noroute``),
:class:`~rpcframe.exceptions.MessageDeliveryFailure` (no acknowledgement
after the retries), :class:`~rpcframe.exceptions.MessagingTimeout` (the
send's deadline), :class:`~rpcframe.exceptions.AuthenticationError` (a
peer refused the CURVE handshake), :class:`~rpcframe.exceptions.ConfigurationError`
(a missing or unreadable key file, a bad option), and
:class:`~rpcframe.exceptions.TransportClosed` (used after ``close()``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import redis
import zmq

from rpcframe import exceptions

__all__ = ["IO_ERRORS", "MAPPING", "REDIS_ERRORS", "closed", "mapped", "translate", "undeliverable"]

#: What redis-py raises when Redis cannot answer (the name service is down).
REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

#: Everything the backends raise when an operation fails.
IO_ERRORS: tuple[type[BaseException], ...] = (zmq.ZMQError, *REDIS_ERRORS)

#: Backend exception class -> rpcframe exception class; the first match wins.
MAPPING: tuple[tuple[type[BaseException], type[exceptions.TransportDriverError]], ...] = (
    (redis.AuthenticationError, exceptions.AuthenticationError),
    (redis.RedisError, exceptions.TransportBroken),
    (zmq.ZMQError, exceptions.TransportBroken),
    (OSError, exceptions.TransportBroken),
)


def translate(exc: BaseException, message: str) -> exceptions.TransportDriverError:
    """The rpcframe exception for ``exc``, saying ``message``; the caller raises it ``from exc``."""
    for backend, ours in MAPPING:
        if isinstance(exc, backend):
            return ours(message)
    return exceptions.TransportBroken(message)


@contextlib.contextmanager
def mapped(doing: str) -> Iterator[None]:
    """Let no backend exception out of the block: raise its rpcframe counterpart."""
    try:
        yield
    except IO_ERRORS as exc:
        raise translate(exc, f"{doing}: {type(exc).__name__}: {exc}") from exc


def closed(what: str = "transport") -> exceptions.TransportClosed:
    """The error for the driver (or one of its listeners) used after it was closed."""
    return exceptions.TransportClosed(f"the ZeroMQ {what} is closed")


def undeliverable(
    exchange: str, topic: str, body: bytes, why: str
) -> exceptions.MessageUndeliverable:
    """MessageUndeliverable whose text says why no process took the message."""
    error = exceptions.MessageUndeliverable(None, exchange, topic, body)
    error.args = (f"message to {exchange!r}/{topic!r} was not delivered: {why}",)
    return error
