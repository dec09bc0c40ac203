"""The connection of an asyncio driver, opened lazily and reopened when it drops.

A :class:`Link` connects on the running loop the first time something needs
the broker, going round the URL's hosts with the threaded driver's backoff
(:class:`~rpcframe.drivers.amqp.reconnect.Schedule`: ``rabbit_retry_interval``,
``rabbit_retry_backoff``, ``rabbit_interval_max``, ``kombu_reconnect_splay``).
Every connection has a *generation*; what was learnt on one (channels,
declarations, delivery tags) is void on the next.

When the connection drops and *subscribers* are registered (listeners and
inboxes), the link reconnects at once in a task of its own and calls each
subscriber's ``resume(connection, generation)`` so that it declares its
queues and consumes again; senders simply wait for the next connection.
A refused login or TLS certificate ends the attempts for good
(AuthenticationError), as in the threaded driver. Heartbeats are the
protocol's (:mod:`.protocol`), negotiated from ``heartbeat_timeout_threshold``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
import time
from typing import Any, Protocol

from rpcframe import exceptions
from rpcframe.drivers.amqp.aio import errors, protocol
from rpcframe.drivers.amqp.reconnect import Schedule
from rpcframe.drivers.amqp.settings import Host, LinkSettings

__all__ = ["CONNECT_TIMEOUT", "Link", "Subscriber", "open_channel"]

LOG = logging.getLogger(__name__)

#: Bound on one TCP connect plus AMQP handshake.
CONNECT_TIMEOUT = 10.0

#: The login methods (``rabbit_login_method``) the asyncio driver speaks.
LOGIN_METHODS = ("PLAIN", "AMQPLAIN", "EXTERNAL")


class Subscriber(Protocol):
    async def resume(self, connection: protocol.Connection, generation: int) -> None:
        """Declare and consume again on a new connection; raises IO_ERRORS."""

    def broken(self, error: exceptions.TransportDriverError) -> None:
        """The subscription cannot be restored (a declaration refused, a login refused)."""


class Link:
    """The connection of one driver; see the module documentation."""

    def __init__(self, settings: LinkSettings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.generation = 0
        self._schedule = Schedule(settings)
        self._conn: protocol.Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        # Set and replaced at each change: a connection up, an attempt failed.
        self._changed = asyncio.Event()
        self._refused: exceptions.AuthenticationError | None = None
        self._subscribers: set[Subscriber] = set()
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed

    # -- subscribers --------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.add(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.discard(subscriber)

    # -- getting a connection ----------------------------------------------------------------

    async def connection(self, attempts: int | None = None) -> tuple[protocol.Connection, int]:
        """The current connection and its generation, connecting first if need be.

        ``attempts`` bounds the failed connection attempts this caller sits
        through (None: until it is cancelled, or its own deadline); then
        MessageDeliveryFailure. Raises AuthenticationError (refused),
        TransportClosed.
        """
        failures = 0
        while True:
            if self._closed:
                raise errors.closed()
            if self._refused is not None:
                refused = self._refused
                raise exceptions.AuthenticationError(str(refused)) from refused.__cause__
            conn = self._conn
            if conn is not None and not conn.is_closed:
                return conn, self.generation
            if attempts is not None and failures > attempts:
                raise exceptions.MessageDeliveryFailure(
                    f"could not reach RabbitMQ after {failures} attempt(s): {self._why()}"
                )
            changed = self._changed
            self._start()
            await changed.wait()
            if not self.connected:
                failures += 1

    def _start(self) -> None:
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.get_running_loop().create_task(
                self._connect(), name=f"{self.name}-connect"
            )

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _why(self) -> str:
        error = self._schedule.error
        return errors.describe(error) if error is not None else "not connected"

    async def _connect(self) -> None:
        """Attempt until connected (and subscribers resumed), refused or closed."""
        while not self._closed:
            delay = self._schedule.start_at() - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # the backoff between attempts
                if self._closed:
                    return
            host = self._schedule.next_host()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    conn = await self._open(host)
            except errors.IO_OR_TIMEOUT as exc:
                refusal = errors.refused(exc)
                if refusal is not None:
                    self._refuse(refusal, host)
                    return
                LOG.info("%s: could not connect to %s: %s", self.name, host, errors.describe(exc))
                self._schedule.failed(exc)
                self._notify()
                continue
            self._schedule.succeeded()
            self.generation += 1
            generation = self.generation
            self._conn = conn
            conn.closing.add_done_callback(functools.partial(self._lost, conn, generation))
            LOG.debug("%s: connected to %s (generation %d)", self.name, host, generation)
            if await self._resume(conn, generation):
                self._notify()
                return

    def _refuse(self, exc: BaseException, host: Host) -> None:
        """The broker refused us, or we refused it: no further attempt."""
        text = errors.refusal(exc, host, host.username, self.settings.virtual_host)
        LOG.error("%s: %s", self.name, text)
        refused = exceptions.AuthenticationError(text)
        refused.__cause__ = exc
        self._refused = refused
        self._schedule.failed(exc)
        self._notify()
        for subscriber in list(self._subscribers):
            subscriber.broken(refused)

    async def _resume(self, conn: protocol.Connection, generation: int) -> bool:
        """Let every subscriber consume again; False if the connection failed meanwhile."""
        for subscriber in list(self._subscribers):
            try:
                await subscriber.resume(conn, generation)
            except errors.IO_ERRORS as exc:
                if conn.is_closed:
                    return False
                subscriber.broken(
                    errors.translate(exc, f"could not subscribe again: {errors.describe(exc)}")
                )
        return not conn.is_closed

    async def _open(self, host: Host) -> protocol.Connection:
        s = self.settings
        tls = s.ssl is not None
        if tls and self._ssl_context is None:
            self._ssl_context = ssl_context(s.ssl or {})
        return await protocol.connect(
            host.hostname,
            host.port,
            name=self.name,
            login=protocol.login(s.login_method, host.username, host.password),
            virtual_host=s.virtual_host,
            heartbeat=int(s.heartbeat),
            ssl_context=self._ssl_context if tls else None,
        )

    def _lost(self, conn: protocol.Connection, generation: int, done: asyncio.Future[Any]) -> None:
        error = None if done.cancelled() else done.exception()
        if self._conn is not conn:
            return
        self._conn = None
        if self._closed:
            return
        LOG.warning(
            "%s: the connection to RabbitMQ was lost (generation %d): %s",
            self.name,
            generation,
            errors.describe(error) if error is not None else "closed",
        )
        self._schedule.lost(error or ConnectionError("closed"))
        self._notify()
        if self._subscribers:
            self._start()

    def broken(self, generation: int) -> None:
        """A caller saw connection ``generation`` fail: drop it (stale generations are ignored)."""
        conn = self._conn
        if conn is None or generation != self.generation:
            return
        asyncio.get_running_loop().create_task(conn.close())

    async def close(self) -> None:
        """Close the connection; callers waiting for one get TransportClosed."""
        if self._closed:
            return
        self._closed = True
        self._subscribers.clear()
        self._notify()
        connecting, self._connecting = self._connecting, None
        if connecting is not None and not connecting.done():
            connecting.cancel()
            with contextlib.suppress(BaseException):
                await connecting
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*errors.IO_OR_TIMEOUT):
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await conn.close()


async def open_channel(conn: protocol.Connection, confirms: bool = False) -> protocol.Channel:
    """A new channel on ``conn``; raises IO_ERRORS."""
    return await conn.channel(confirms=confirms)


def ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """An SSLContext from TLS settings made by :func:`~rpcframe.drivers.amqp.settings.ssl_options`.

    The same checks as the threaded driver: the chain against ``ca_certs`` (or
    the system's CAs), the host name unless hostname verification is off,
    nothing with ``ssl_verify=false``; a client certificate if given; a
    pinned protocol version.
    """
    try:
        context = ssl.create_default_context(cafile=options.get("ca_certs"))
        if options.get("cert_reqs") == ssl.CERT_NONE:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif "server_hostname" not in options:
            context.check_hostname = False
        if options.get("certfile"):
            context.load_cert_chain(options["certfile"], options.get("keyfile"))
    except (OSError, ssl.SSLError) as exc:
        raise exceptions.ConfigurationError(
            f"[oslo_messaging_rabbit] TLS files could not be loaded: {exc}"
        ) from exc
    if "tls_minimum_version" in options:
        context.minimum_version = options["tls_minimum_version"]
        context.maximum_version = options["tls_maximum_version"]
    return context
