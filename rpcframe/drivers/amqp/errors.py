"""What the RabbitMQ driver raises: backend exceptions mapped to rpcframe's, in one table.

Inside the driver, py-amqp's and the socket layer's exceptions
(:data:`IO_ERRORS`) mean "this connection failed": the links catch them,
reconnect and try again, and nothing of that escapes. What does escape, a
failure the driver gives up on, leaves as an rpcframe exception, chosen by
:data:`MAPPING`, with the backend's exception as ``__cause__``:

* ``amqp.exceptions.AccessRefused`` (a 403: login or permissions refused):
  :class:`~rpcframe.exceptions.AuthenticationError`;
* ``ssl.SSLCertVerificationError`` (the broker's TLS certificate does not
  chain to a trusted CA, or does not name the host): also
  :class:`~rpcframe.exceptions.AuthenticationError`: here the broker failed
  to prove who it is, and, as with refused credentials, trying again
  cannot help, so the link does not (see :func:`refusal`);
* any other ``amqp.exceptions.AMQPError`` (the broker closed the connection
  or a channel, refused a declaration, saw a protocol error):
  :class:`~rpcframe.exceptions.TransportBroken`;
* any other ``ssl.SSLError``, ``OSError`` (socket errors, ``ConnectionError``,
  ``TimeoutError``) and ``EOFError``: :class:`~rpcframe.exceptions.TransportBroken`.

Besides: the driver used after ``close()`` raises
:class:`~rpcframe.exceptions.TransportClosed` (:func:`closed`), and the
conditions the driver detects itself stay what they are: MessagingTimeout
(a deadline), MessageDeliveryFailure (the ``retry`` attempts are used up,
or the broker nacked a message), MessageUndeliverable (a mandatory message
had no route), AuthenticationError (a refused login).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator

import amqp.exceptions

from rpcframe import exceptions

__all__ = [
    "IO_ERRORS",
    "MAPPING",
    "REFUSALS",
    "closed",
    "describe",
    "mapped",
    "refusal",
    "translate",
]

#: Everything py-amqp or the socket layer raises when a connection fails.
IO_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    amqp.exceptions.AMQPError,
)

#: Backend exception class -> rpcframe exception class; the first match wins.
MAPPING: tuple[tuple[type[BaseException], type[exceptions.TransportDriverError]], ...] = (
    (amqp.exceptions.AccessRefused, exceptions.AuthenticationError),
    (ssl.SSLCertVerificationError, exceptions.AuthenticationError),
    (amqp.exceptions.AMQPError, exceptions.TransportBroken),
    (ssl.SSLError, exceptions.TransportBroken),
    (OSError, exceptions.TransportBroken),
    (EOFError, exceptions.TransportBroken),
)


#: What a connection attempt may fail with that no further attempt would mend.
REFUSALS: tuple[type[BaseException], ...] = (
    amqp.exceptions.AccessRefused,
    ssl.SSLCertVerificationError,
)


def refusal(exc: BaseException, host: object, user: str, virtual_host: str) -> str:
    """Why the broker at ``host`` was refused, or refused us (one of :data:`REFUSALS`)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (
            f"the TLS certificate of RabbitMQ at {host} failed verification: {reason} "
            "(the certificate must chain to [oslo_messaging_rabbit] ssl_ca_file, or to a "
            "CA the system trusts, and name the host in the transport URL)"
        )
    text = getattr(exc, "reply_text", "") or str(exc)
    return (
        f"RabbitMQ at {host} refused the login of user {user!r} "
        f"(virtual host {virtual_host!r}): {text}"
    )


def translate(exc: BaseException, message: str) -> exceptions.TransportDriverError:
    """The rpcframe exception for the backend's ``exc``, saying ``message``.

    The caller raises it ``from exc``. An exception the table does not know
    is a TransportBroken too: it came from the backend.
    """
    for backend, ours in MAPPING:
        if isinstance(exc, backend):
            return ours(message)
    return exceptions.TransportBroken(message)


@contextlib.contextmanager
def mapped(doing: str) -> Iterator[None]:
    """Let no backend exception out of the block: raise its rpcframe counterpart.

    ``doing`` says what the block does ("reading the queue manager's
    counter /dev/shm/..."); the error says it, then the backend's error.
    """
    try:
        yield
    except IO_ERRORS as exc:
        raise translate(exc, f"{doing}: {describe(exc)}") from exc


def closed(what: str = "transport") -> exceptions.TransportClosed:
    """The error for the driver (or one of its listeners) used after it was closed."""
    return exceptions.TransportClosed(f"the RabbitMQ {what} is closed")


def describe(exc: BaseException) -> str:
    """A short text for an I/O error, without credentials."""
    if isinstance(exc, amqp.exceptions.AMQPError) and exc.reply_text:
        return f"{type(exc).__name__}: {exc.reply_code} {exc.reply_text}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
