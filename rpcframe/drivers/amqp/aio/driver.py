"""AsyncRabbitDriver: RabbitMQ for :mod:`rpcframe.aio` on an asyncio.Protocol, as oslo speaks it.

One connection per driver (a :class:`~rpcframe.drivers.amqp.aio.link.Link`
speaking AMQP with :mod:`~rpcframe.drivers.amqp.aio.protocol`,
opened on the running loop by the first send or subscription) carries
everything: a *confirm* channel (publisher confirms) for what the sender
waits to see owned by the broker, a *plain* channel for call requests sent
with ``confirm=False`` (their reply proves delivery), a channel for
declarations, and one channel per listener (:mod:`.listener`).

Sending publishes as the threaded driver does: the route, exchange and flags
of :mod:`~rpcframe.drivers.amqp.topology` (exchanges, and notification
queues, declared once per connection), oslo.messaging's properties
(``application/json``, ``utf-8``, persistent, priority 0), ``expiration``
from ``expiry``; ``mandatory`` messages the broker returns raise
MessageUndeliverable (a reply to a caller's queue that is gone); a nack is
MessageDeliveryFailure. ``timeout`` bounds the whole send, reconnecting
included (MessagingTimeout); a connection lost under a send publishes it
again on the next one, within ``retry`` (None or -1: until the timeout,
N: N more attempts, then MessageDeliveryFailure), so a send that returns
was confirmed, possibly twice (servers drop duplicate ``_unique_id``\\ s).

Options and URL parameters are the threaded driver's
(``[oslo_messaging_rabbit]``); ``kombu_compression`` is supported for
``gzip`` and ``bz2`` (kombu's encodings, done with the standard library),
and received messages with either are decompressed. It logs in with
AMQPLAIN (the default), PLAIN or EXTERNAL; RABBIT-CR-DEMO is refused when
the driver is built.
"""

from __future__ import annotations

import asyncio
import bz2
import logging
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers import asyncbase, base
from rpcframe.drivers.amqp import frames, settings, topology
from rpcframe.drivers.amqp import options as opts
from rpcframe.drivers.amqp.aio import errors, protocol
from rpcframe.drivers.amqp.aio.link import CONNECT_TIMEOUT, LOGIN_METHODS, Link, open_channel
from rpcframe.drivers.amqp.aio.listener import Listener, declare_exchange, declare_queue

__all__ = ["AsyncRabbitDriver"]

LOG = logging.getLogger(__name__)

#: Routes remembered per address (reply addresses come and go with callers).
_ROUTE_CACHE_SIZE = 4096

#: kombu's compression names and content types, for what the standard library does.
_COMPRESSIONS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("application/x-gzip", zlib.compress),
    "zlib": ("application/x-gzip", zlib.compress),
    "bz2": ("application/x-bz2", bz2.compress),
    "bzip2": ("application/x-bz2", bz2.compress),
}
_DECOMPRESSIONS: dict[str, Callable[[bytes], bytes]] = {
    "application/x-gzip": zlib.decompress,
    "application/x-bz2": bz2.decompress,
}

_CONFIRM, _PLAIN, _DECLARE = "confirm", "plain", "declare"


class AsyncRabbitDriver(asyncbase.AsyncDriver):
    """RabbitMQ on an event loop; see the module documentation."""

    capabilities = base.Capabilities()

    def __init__(self, conf: cfg.ConfigOpts, url: Any) -> None:
        super().__init__(conf, url)
        self.options = base.driver_options(
            conf, opts.RABBIT_GROUP, opts.rabbit_opts, url.query, ignore=(settings.SSL_VERIFY,)
        )
        settings.check_combinations(self.options)
        self._compression: tuple[str, Callable[[bytes], bytes]] | None = None
        if self.options.kombu_compression:
            name = self.options.kombu_compression
            if name not in _COMPRESSIONS:
                raise exceptions.ConfigurationError(
                    f"[{opts.RABBIT_GROUP}] kombu_compression {name!r}: the asyncio "
                    "driver compresses with gzip or bz2 only"
                )
            self._compression = _COMPRESSIONS[name]
        #: The encoded ``headers`` property of every message (kombu's ``compression``).
        self._headers = (
            None
            if self._compression is None
            else frames.encode_headers((("compression", self._compression[0]),))
        )
        if self.options.rabbit_login_method.upper() not in LOGIN_METHODS:
            raise exceptions.ConfigurationError(
                f"[{opts.RABBIT_GROUP}] rabbit_login_method "
                f"{self.options.rabbit_login_method!r}: the asyncio driver logs in with "
                f"{', '.join(LOGIN_METHODS)}"
            )
        unique = None
        if self.options.use_queue_manager:
            from rpcframe.drivers.amqp.driver import _lock_path
            from rpcframe.drivers.amqp.queue_manager import QueueManager

            manager = QueueManager(
                self.options.hostname, self.options.processname, _lock_path(conf)
            )
            unique = manager.next_name
        self.topology = topology.Topology.from_options(self.options, unique)
        self.settings = settings.link_settings(url, self.options)
        self._name = f"rpcframe-aio-amqp-{id(self):x}"
        self._link: Link | None = None
        self._closed = False
        self._routes: dict[base.Address, topology.Route] = {}
        self._listeners: set[Listener] = set()
        # Per connection generation: channels, and what is declared (or being declared).
        self._generation = 0
        self._channels: dict[str, asyncio.Future[protocol.Channel]] = {}
        self._declared: dict[str, asyncio.Future[None]] = {}
        # The same, once done: what a send needs to publish without a wait
        # (by Route.declares; "" is a route with nothing to declare).
        self._ready: dict[str, protocol.Channel] = {}
        self._done: set[str] = {""}
        # Exchanges that exist with other flags than ours: declared passively.
        self._foreign: set[str] = set()
        self._listen_timeout = max(
            float(getattr(conf, "rpc_response_timeout", 60)), CONNECT_TIMEOUT
        )

    def __repr__(self) -> str:
        return f"<AsyncRabbitDriver {self.url.masked()}>"

    def _the_link(self) -> Link:
        if self._closed:
            raise errors.closed()
        if self._link is None:
            self._link = Link(self.settings, self._name)
        return self._link

    # -- sending ---------------------------------------------------------------------

    async def send(
        self,
        address: base.Address,
        body: bytes,
        *,
        expiry: float | None = None,
        mandatory: bool = False,
        retry: int | None = None,
        timeout: float | None = None,
        confirm: bool = True,
        **more: Any,
    ) -> None:
        link = self._the_link()
        if not isinstance(body, bytes):
            raise TypeError(f"a message body must be bytes, got {type(body).__name__}")
        # A returned mandatory message is only known once its confirm arrives.
        confirm = confirm or mandatory
        kind = _CONFIRM if confirm else _PLAIN
        route = self._routes.get(address)
        if route is None:
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            route = self._routes[address] = self.topology.route(address)
        exchange = route.exchange.name if route.exchange is not None else topology.DEFAULT_EXCHANGE
        arguments = frames.publish_arguments(exchange, route.routing_key, mandatory)
        expiration = None if expiry is None else str(max(1, int(expiry * 1000)))
        properties = frames.encode_properties(expiration, None, self._headers)
        payload = body if self._compression is None else self._compression[1](body)
        # Connected, declared, channel open: publish at once, and wait for the confirm only.
        future: asyncio.Future[None] | None = None
        channel = self._ready.get(kind)
        generation = self._generation
        if channel is not None and route.declares in self._done and not channel.is_closed:
            try:
                future = channel.publish(arguments, properties, payload, tagged=mandatory)
            except errors.IO_ERRORS:
                pass  # the loop below reconnects and sends it
            else:
                if future is None:
                    return
                if future.done() and not future.cancelled() and future.exception() is None:
                    return
        left = retry if retry is not None and retry >= 0 else None
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline) as scope:
                while True:
                    try:
                        if future is None:
                            conn, generation = await link.connection(left)
                            await self._declare(route, conn, generation)
                            channel = await self._channel(conn, generation, kind)
                            future = channel.publish(
                                arguments, properties, payload, tagged=mandatory
                            )
                            if future is None:
                                return
                        assert channel is not None
                        await self._confirmed(future, channel, exchange, route, body)
                        return
                    except errors.IO_ERRORS as exc:
                        future = None
                        link.broken(generation)
                        if left is not None:
                            if left == 0:
                                raise exceptions.MessageDeliveryFailure(
                                    f"could not send to {exchange!r}/{route.routing_key!r}: the "
                                    "connection failed and no retries are left"
                                ) from exc
                            left -= 1
                        LOG.debug(
                            "resending to %r/%r after a reconnect", exchange, route.routing_key
                        )
        except TimeoutError as exc:
            if scope.expired():
                raise exceptions.MessagingTimeout(
                    f"could not send to {exchange!r}/{route.routing_key!r} within {timeout} s",
                    timeout=timeout,
                ) from None
            raise exceptions.TransportBroken(f"RabbitMQ did not answer: {exc}") from exc

    @staticmethod
    async def _confirmed(
        future: asyncio.Future[None],
        channel: protocol.Channel,
        exchange: str,
        route: topology.Route,
        body: bytes,
    ) -> None:
        """Wait for a publish's confirm; raises IO_ERRORS if the connection failed under it."""
        try:
            await future
        except protocol.Returned as exc:
            raise exceptions.MessageUndeliverable(None, exchange, route.routing_key, body) from exc
        except protocol.Nacked as exc:
            raise exceptions.MessageDeliveryFailure(
                f"RabbitMQ refused the message to {exchange!r}/{route.routing_key!r}"
            ) from exc
        except protocol.ChannelClosed as exc:
            if channel.connection.is_closed:
                raise
            raise errors.translate(
                exc,
                f"RabbitMQ refused the message to {exchange!r}/{route.routing_key!r}: "
                f"{errors.describe(exc)}",
            ) from exc

    def _new_generation(self, generation: int) -> None:
        if generation != self._generation:
            self._generation = generation
            self._channels, self._declared = {}, {}
            self._ready, self._done = {}, {""}

    async def _channel(
        self, conn: protocol.Connection, generation: int, kind: str
    ) -> protocol.Channel:
        """The connection's channel of ``kind``, opened (again) if need be."""
        self._new_generation(generation)
        future = self._channels.get(kind)
        if future is not None and future.done() and not future.cancelled():
            if future.exception() is None and not future.result().is_closed:
                return future.result()
            future = None
        if future is None:
            self._ready.pop(kind, None)
            future = self._channels[kind] = asyncio.get_running_loop().create_future()
            try:
                channel = await open_channel(conn, confirms=kind == _CONFIRM)
            except BaseException as exc:
                del self._channels[kind]
                future.set_exception(exc)
                future.exception()
                raise
            future.set_result(channel)
            if generation == self._generation:
                self._ready[kind] = channel
            return channel
        return await asyncio.shield(future)

    async def _declare(
        self, route: topology.Route, conn: protocol.Connection, generation: int
    ) -> None:
        """Declare the route's exchange (and queue) once per connection."""
        exchange, queue = route.exchange, route.queue
        key = route.declares
        if not key:
            return
        self._new_generation(generation)
        done = self._declared.get(key)
        if done is not None:
            if not done.done():
                await asyncio.shield(done)
            elif done.exception() is None:
                return
            else:
                del self._declared[key]
                raise done.exception()  # type: ignore[misc]
            return
        done = self._declared[key] = asyncio.get_running_loop().create_future()
        try:
            await self._declare_now(exchange, queue, conn, generation)
        except BaseException as exc:
            del self._declared[key]
            done.set_exception(exc)
            done.exception()
            raise
        done.set_result(None)
        if generation == self._generation:
            self._done.add(key)

    async def _declare_now(
        self,
        exchange: topology.Exchange | None,
        queue: topology.Queue | None,
        conn: protocol.Connection,
        generation: int,
    ) -> None:
        assert exchange is not None
        for _ in range(2):
            channel = await self._channel(conn, generation, _DECLARE)
            try:
                await declare_exchange(channel, exchange, passive=exchange.name in self._foreign)
                if queue is not None:
                    await declare_queue(channel, queue)
                    for bound, key in queue.bindings:
                        if bound.name:
                            await channel.queue_bind(queue.name, bound.name, routing_key=key)
                return
            except protocol.PreconditionFailed as exc:
                text = errors.reply_text(exc)
                what = topology.inequivalent(text)
                exchange_flags = what in topology.TOLERATED or (what is None and queue is None)
                if exchange_flags and exchange.name not in self._foreign:
                    LOG.warning(
                        "exchange %r exists with other settings (%s); using it as it is",
                        exchange.name,
                        text,
                    )
                    self._foreign.add(exchange.name)
                    continue
                if queue is not None and what is not None and what[0] == "queue":
                    raise exceptions.TransportBroken(topology.refusal(queue, text)) from exc
                raise exceptions.TransportBroken(
                    f"RabbitMQ refused to declare {exchange.name!r}: {text} (does it exist "
                    "with other settings, e.g. durable or quorum? Delete it or align the options)"
                ) from exc

    # -- receiving -----------------------------------------------------------------------

    async def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> asyncbase.AsyncListener:
        queues = self.topology.subscriptions(addresses, pool)
        return await self._consume(
            queues, "listen", prefetch=self.options.rabbit_qos_prefetch_count
        )

    async def open_inbox(self) -> asyncbase.AsyncInbox:
        queue = self.topology.reply_queue()
        return await self._consume(
            [queue],
            "reply",
            no_ack=True,
            address=base.Address(topology.DEFAULT_EXCHANGE, queue.name, kind=base.REPLY),
        )

    async def _consume(
        self,
        queues: list[topology.Queue],
        role: str,
        *,
        prefetch: int = 0,
        no_ack: bool = False,
        address: base.Address | None = None,
    ) -> Listener:
        link = self._the_link()
        listener = Listener(
            link,
            queues,
            f"{self._name}-{role}",
            prefetch=prefetch,
            no_ack=no_ack,
            reconnect_delay=self.options.kombu_reconnect_delay,
            decode=_decompressed,
            address=address,
            on_closed=self._listeners.discard,
        )
        self._listeners.add(listener)
        try:
            async with asyncio.timeout(self._listen_timeout):
                while True:
                    conn, generation = await link.connection()
                    link.subscribe(listener)
                    try:
                        await listener.resume(conn, generation)
                        return listener
                    except errors.IO_ERRORS as exc:
                        if not conn.is_closed:
                            raise errors.translate(
                                exc, f"could not subscribe on RabbitMQ: {errors.describe(exc)}"
                            ) from exc
        except TimeoutError as exc:
            await listener.shutdown()
            raise exceptions.TransportBroken(
                f"could not subscribe on RabbitMQ ({self.url.masked()}) within "
                f"{self._listen_timeout} s"
            ) from exc
        except BaseException:
            await listener.shutdown()
            raise

    # -- closing -------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in list(self._listeners):
            await listener.shutdown()
        link, self._link = self._link, None
        if link is not None:
            await link.close()


def _decompressed(body: bytes, headers: dict[str, Any]) -> bytes:
    """The body of a message kombu compressed (``compression`` header)."""
    compression = headers.get("compression")
    if not compression:
        return body
    decompress = _DECOMPRESSIONS.get(str(compression))
    if decompress is None:
        LOG.error("cannot decompress a message (compression %r); passing it on as it is",
                  compression)  # fmt: skip
        return body
    try:
        return decompress(body)
    except (zlib.error, OSError, ValueError) as exc:
        LOG.error("cannot decompress a message (compression %r): %s", compression, exc)
        return body
