"""What the asyncio RabbitMQ driver raises: its protocol's exceptions mapped to rpcframe's.

Inside the driver, :data:`IO_ERRORS` mean "this connection (or channel)
failed": the driver reconnects and tries again where it can. What escapes
is an rpcframe exception, with the backend's as ``__cause__``:

* a refused login (:class:`~rpcframe.drivers.amqp.aio.protocol.LoginRefused`,
  a 403 on a channel) and a broker TLS certificate that fails verification:
  :class:`~rpcframe.exceptions.AuthenticationError`, never retried;
* anything else the protocol or the socket layer raises:
  :class:`~rpcframe.exceptions.TransportBroken`.

The same rules as the threaded driver's table
(:mod:`rpcframe.drivers.amqp.errors`), for the other backend.
"""

from __future__ import annotations

import ssl

from rpcframe import exceptions
from rpcframe.drivers.amqp.aio import protocol

__all__ = [
    "IO_ERRORS",
    "IO_OR_TIMEOUT",
    "REFUSALS",
    "closed",
    "describe",
    "refusal",
    "refused",
    "translate",
]

#: Everything the protocol or the socket layer raises when a connection or channel fails.
IO_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, protocol.AMQPError)

#: IO_ERRORS, and a time limit of the driver's own.
IO_OR_TIMEOUT: tuple[type[BaseException], ...] = (*IO_ERRORS, TimeoutError)

#: What a connection attempt may fail with that no further attempt would mend.
REFUSALS: tuple[type[BaseException], ...] = (protocol.LoginRefused, ssl.SSLCertVerificationError)

_AUTHENTICATION = (*REFUSALS, protocol.AccessRefused)


def refused(exc: BaseException) -> BaseException | None:
    """The refusal (one of :data:`REFUSALS`) behind a failed connection attempt, or None.

    A refusal may be the cause of another error (the socket layer's
    wrapping a TLS verification failure).
    """
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            return None
        if isinstance(seen, REFUSALS):
            return seen
        seen = seen.__cause__
    return None


def translate(exc: BaseException, message: str) -> exceptions.TransportDriverError:
    """The rpcframe exception for the backend's ``exc``; the caller raises it ``from exc``."""
    if isinstance(exc, _AUTHENTICATION):
        return exceptions.AuthenticationError(message)
    return exceptions.TransportBroken(message)


def refusal(exc: BaseException, host: object, user: str, virtual_host: str) -> str:
    """Why the broker at ``host`` was refused, or refused us (one of :data:`REFUSALS`)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return (
            f"the TLS certificate of RabbitMQ at {host} failed verification: {reason} "
            "(the certificate must chain to [oslo_messaging_rabbit] ssl_ca_file, or to a "
            "CA the system trusts, and name the host in the transport URL)"
        )
    return (
        f"RabbitMQ at {host} refused the login of user {user!r} "
        f"(virtual host {virtual_host!r}): {describe(exc)}"
    )


def closed(what: str = "transport") -> exceptions.TransportClosed:
    """The error for the driver (or one of its listeners) used after it was closed."""
    return exceptions.TransportClosed(f"the RabbitMQ {what} is closed")


def describe(exc: BaseException) -> str:
    """A short text for an I/O error, without credentials."""
    if isinstance(exc, protocol.ChannelClosed):
        return f"{type(exc).__name__}: {exc.text}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def reply_text(exc: protocol.ChannelClosed) -> str:
    """The broker's reply text of a channel it closed (``PRECONDITION_FAILED - ...``)."""
    return exc.text
