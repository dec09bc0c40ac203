"""The ``rabbit://`` (alias ``amqp://``) driver: RabbitMQ through kombu's py-amqp transport.

The driver reads its ``[oslo_messaging_rabbit]`` options (URL query
parameters override them), maps addresses to oslo.messaging's exchanges and
queues (:mod:`~rpcframe.drivers.amqp.topology`), and wires one
:class:`~rpcframe.drivers.amqp.publisher.Publisher` (opened on the first
send) and one :class:`~rpcframe.drivers.amqp.consumer.Consumer` per listener
or inbox, each on its own connection.

Listeners of classic queues take a window of messages ahead of their
server's workers (:mod:`~rpcframe.drivers.amqp.consumer`), on top of
``rabbit_qos_prefetch_count``, which bounds each consumer as in oslo.messaging.

Confirm strategy: every send waits for the broker's publisher confirm,
except what the core sends with ``confirm=False`` (call requests, not
mandatory): their reply proves delivery, and the call's own deadline bounds
the wait.

Option combinations oslo.messaging refuses (stream fanout without transient
quorum queues or without a prefetch count, mirrored with quorum queues) and
an unknown ``kombu_compression`` are a ConfigurationError when the driver is
built. The queue manager (``use_queue_manager``) draws its names when a
reply inbox or fanout listener is opened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import kombu.compression
from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.drivers.amqp import errors, settings, topology
from rpcframe.drivers.amqp import options as opts
from rpcframe.drivers.amqp.connection import CONNECT_TIMEOUT
from rpcframe.drivers.amqp.consumer import Consumer
from rpcframe.drivers.amqp.publisher import Publisher, deadline_after
from rpcframe.drivers.amqp.queue_manager import QueueManager

__all__ = ["RabbitDriver"]

LOG = logging.getLogger(__name__)

#: Routes remembered per address (reply addresses come and go with callers).
_ROUTE_CACHE_SIZE = 4096


class RabbitDriver(base.Driver):
    """RabbitMQ transport, wire-compatible with oslo.messaging's rabbit driver."""

    capabilities = base.Capabilities()

    def __init__(self, conf: cfg.ConfigOpts, url: Any) -> None:
        super().__init__(conf, url)
        self.options = base.driver_options(
            conf, opts.RABBIT_GROUP, opts.rabbit_opts, url.query, ignore=(settings.SSL_VERIFY,)
        )
        settings.check_combinations(self.options)
        if self.options.kombu_compression:
            compression_name(self.options.kombu_compression)
        self.queue_manager: QueueManager | None = None
        if self.options.use_queue_manager:
            self.queue_manager = QueueManager(
                self.options.hostname, self.options.processname, _lock_path(conf)
            )
        self.topology = topology.Topology.from_options(
            self.options, self.queue_manager.next_name if self.queue_manager else None
        )
        self.settings = settings.link_settings(url, self.options)
        self._name = f"rpcframe-amqp-{id(self):x}"
        self._lock = threading.Lock()
        self._closed = False
        self._publisher: Publisher | None = None
        self._consumers: set[Consumer] = set()
        self._routes: dict[base.Address, topology.Route] = {}
        self._listen_timeout = float(getattr(conf, "rpc_response_timeout", 60))
        # A listener's first window, until its server says how many workers are free.
        self._pool_size = int(getattr(conf, "executor_thread_pool_size", 64))

    def __repr__(self) -> str:
        return f"<RabbitDriver {self.url.masked()}>"

    # -- sending -------------------------------------------------------------------------

    def _sender(self) -> Publisher:
        publisher = self._publisher
        if publisher is not None:
            return publisher
        with self._lock:
            if self._closed:
                raise errors.closed()
            if self._publisher is None:
                compression = self.options.kombu_compression
                self._publisher = Publisher(
                    self.settings,
                    self._name,
                    compression_name(compression) if compression else None,
                )
            return self._publisher

    def send(
        self,
        address: base.Address,
        body: bytes,
        *,
        expiry: float | None = None,
        mandatory: bool = False,
        retry: int | None = None,
        timeout: float | None = None,
        confirm: bool = True,
    ) -> None:
        if self._closed:
            raise errors.closed()
        if not isinstance(body, bytes):
            raise TypeError(f"a message body must be bytes, got {type(body).__name__}")
        # A returned mandatory message is only known once its confirm arrives.
        confirm = confirm or mandatory
        route = self._routes.get(address)
        if route is None:
            if len(self._routes) >= _ROUTE_CACHE_SIZE:
                self._routes.clear()
            route = self._routes[address] = self.topology.route(address)
        self._sender().send(
            route,
            body,
            expiry=expiry,
            mandatory=mandatory,
            confirm=confirm,
            retry=retry,
            deadline=deadline_after(timeout),
        )

    def detached_sender(
        self, address: base.Address, timeout: float | None = None
    ) -> Callable[[bytes], bool] | None:
        if self._closed or address.kind != base.REPLY:
            return None
        route = self.topology.route(address)
        wait = CONNECT_TIMEOUT if timeout is None else min(timeout, CONNECT_TIMEOUT)
        try:
            return self._sender().detached_sender(route, deadline_after(wait))
        except exceptions.MessagingException as exc:
            LOG.debug("no detached sender for %s: %s", address, exc)
            return None

    # -- receiving -----------------------------------------------------------------------

    def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> base.Listener:
        queues = self.topology.subscriptions(addresses, pool)
        return self._consume(
            queues,
            "listen",
            prefetch=self.options.rabbit_qos_prefetch_count,
            window=self._pool_size if _windowable(queues) else 0,
        )

    def open_inbox(self) -> base.Inbox:
        queue = self.topology.reply_queue()
        return self._consume(
            [queue],
            "reply",
            no_ack=True,
            address=base.Address(topology.DEFAULT_EXCHANGE, queue.name, kind=base.REPLY),
        )

    def _consume(
        self,
        queues: list[topology.Queue],
        role: str,
        *,
        prefetch: int = 0,
        window: int = 0,
        no_ack: bool = False,
        address: base.Address | None = None,
    ) -> Consumer:
        if self._closed:
            raise errors.closed()
        consumer = Consumer(
            self.settings,
            queues,
            f"{self._name}-{role}",
            prefetch=prefetch,
            window=window,
            no_ack=no_ack,
            reconnect_delay=self.options.kombu_reconnect_delay,
            address=address,
            on_closed=self._forget,
        )
        with self._lock:
            closed = self._closed
            if not closed:
                self._consumers.add(consumer)
        if closed:
            consumer.shutdown()
            raise errors.closed()
        try:
            consumer.start(time.monotonic() + max(self._listen_timeout, CONNECT_TIMEOUT))
        except exceptions.MessagingTimeout as exc:
            consumer.shutdown()
            raise exceptions.TransportBroken(
                f"could not subscribe on RabbitMQ ({self.url.masked()}): {exc}"
            ) from exc
        except exceptions.MessagingException:
            consumer.shutdown()
            raise
        return consumer

    def _forget(self, consumer: Consumer) -> None:
        with self._lock:
            self._consumers.discard(consumer)

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
            publisher, self._publisher = self._publisher, None
        for consumer in consumers:
            consumer.shutdown()
        if publisher is not None:
            publisher.close()


def _windowable(queues: Sequence[topology.Queue]) -> bool:
    """Whether a listener of ``queues`` can have a window (channel-wide QoS).

    RabbitMQ refuses to consume a quorum queue on a channel with a
    channel-wide limit; streams are read on channels of their own.
    """
    return all(
        queue.arguments.get("x-queue-type", "classic") == "classic"
        for queue in queues
        if not queue.stream
    )


#: Names oslo.messaging's documentation promises that kombu does not know.
_COMPRESSION_ALIASES = {"bz2": "bzip2"}


def compression_name(name: str) -> str:
    """The kombu name of the ``kombu_compression`` value ``name``; ConfigurationError if none."""
    kombu_name = _COMPRESSION_ALIASES.get(name, name)
    try:
        kombu.compression.get_encoder(kombu_name)
    except KeyError:
        known = ", ".join(kombu.compression.encoders())
        raise exceptions.ConfigurationError(
            f"[{opts.RABBIT_GROUP}] kombu_compression {name!r} is unknown: use gzip, bz2 "
            f"or a compression kombu knows here ({known})"
        ) from None
    return kombu_name


def _lock_path(conf: cfg.ConfigOpts) -> str | None:
    """``[oslo_concurrency] lock_path`` of ``conf``, registered as oslo.concurrency does."""
    try:
        from oslo_concurrency import lockutils
    except ImportError:
        conf.register_opts(opts.lock_path_opts, group=opts.LOCK_GROUP)
        path: str | None = conf.oslo_concurrency.lock_path
        return path
    return lockutils.get_lock_path(conf)
