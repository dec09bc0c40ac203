"""The asyncio transport: an async driver, and one reply inbox read by one task.

:class:`AsyncTransport` is to :mod:`rpcframe.aio` what
:class:`rpcframe.transport.Transport` is to the threaded core, and shares its
base (:class:`~rpcframe.transport.TransportCore`): the same addresses, the
same request and reply bodies, the same remote errors. Only the I/O differs.

Replies: on an event loop a reader task costs nothing, so there is no
leader/follower scheme. The inbox is opened on first use and read by one
task that routes each reply by ``_msg_id`` to the watcher registered for it
(a call handle, a stream, a server's control channel), exactly as
:mod:`rpcframe.replies` routes watched ids.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Iterable
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions, options, wire
from rpcframe import transport as msg_transport
from rpcframe.drivers import asyncbase, base
from rpcframe.replies import Watcher
from rpcframe.url import TransportURL

__all__ = ["AsyncTransport", "get_rpc_transport"]

LOG = logging.getLogger(__name__)

DRIVER_NAMESPACE = "rpcframe.aio_drivers"


class AsyncTransport(msg_transport.TransportCore):
    """A transport for asyncio clients and servers. Build it with :func:`get_rpc_transport`."""

    _driver: asyncbase.AsyncDriver
    #: Notifiers and listeners take it without the "RPC transport" warning.
    carries_notifications = True

    def __init__(self, driver: asyncbase.AsyncDriver) -> None:
        super().__init__(driver)
        self._inbox: asyncbase.AsyncInbox | None = None
        self._opening: asyncio.Future[asyncbase.AsyncInbox] | None = None
        self._routes: dict[str, Any] = {}
        self._expiries = _Expiries(self)
        self._reader: asyncio.Task[None] | None = None
        self._cleaned = False

    # -- the reply inbox -----------------------------------------------------

    async def _reply_inbox(self) -> asyncbase.AsyncInbox:
        inbox = self._inbox
        if inbox is not None:
            return inbox
        if self._cleaned:
            raise exceptions.TransportClosed("the transport was cleaned up")
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_future()
            try:
                inbox = await self._driver.open_inbox()
            except BaseException as exc:
                self._opening.set_exception(exc)
                self._opening.exception()  # retrieved: others see it through the future
                self._opening = None
                raise
            self._inbox = inbox
            self._reader = asyncio.get_running_loop().create_task(
                self._read(inbox), name="rpcframe-aio-replies"
            )
            self._opening.set_result(inbox)
            return inbox
        return await asyncio.shield(self._opening)

    async def _read(self, inbox: asyncbase.AsyncInbox) -> None:
        while True:
            incoming = await inbox.poll()
            if incoming is None:
                return
            incoming.ack()
            try:
                reply = wire.parse_reply(incoming.body)
            except exceptions.MalformedMessage as exc:
                LOG.warning("Dropping malformed reply: %s", exc.reason)
                continue
            route = self._routes.get(reply.msg_id)
            if route is None:
                LOG.debug("Dropping reply to message %s: no caller waits for it", reply.msg_id)
                continue
            try:
                route.deliver(reply)
            except Exception:
                LOG.exception("A reply watcher failed")

    def _watch(self, msg_id: str, watcher: Watcher) -> None:
        """Route every message for ``msg_id`` to ``watcher``; it expires at its deadline."""
        if self._cleaned:
            raise exceptions.TransportClosed("the transport was cleaned up")
        self._routes[msg_id] = watcher
        self._expiries.add(msg_id, watcher)

    def _unwatch(self, msg_id: str) -> None:
        if self._routes.pop(msg_id, None) is not None:
            self._expiries.dropped()

    async def _inbox_address(self) -> base.Address:
        return (await self._reply_inbox()).address

    # -- sending --------------------------------------------------------------

    async def _send(
        self,
        target: Any,
        ctxt: Any,
        message: dict[str, Any],
        retry: int | None = None,
        transport_options: msg_transport.TransportOptions | None = None,
    ) -> None:
        """A cast: returns once the driver owns the request.

        Calls go through :meth:`_send_watched` (a call is a handle awaited).
        """
        address = self._address(target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        body = self._cast_body(ctxt, message)
        await self._driver.send(
            address, body, mandatory=mandatory, retry=retry, timeout=self._default_timeout()
        )

    async def _send_watched(
        self,
        target: Any,
        ctxt: Any,
        message: dict[str, Any],
        msg_id: str,
        watcher: Watcher,
        call_options: wire.CallOptions,
        timeout: float,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: msg_transport.TransportOptions | None = None,
    ) -> None:
        """Send a call whose replies go to ``watcher`` (see the threaded transport's)."""
        address = self._address(target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        inbox = await self._reply_inbox()
        body = self._call_body(
            ctxt,
            message,
            msg_id,
            inbox.address.topic,
            timeout,
            call_monitor_timeout,
            call_options,
        )
        self._watch(msg_id, watcher)
        try:
            await self._driver.send(
                address,
                body,
                expiry=timeout or None,
                mandatory=mandatory,
                retry=retry,
                timeout=timeout,
                confirm=mandatory,
            )
        except BaseException:
            self._unwatch(msg_id)
            raise

    async def _send_reply(
        self, address: base.Address, body: bytes, timeout: float, reply_ref: str | None = None
    ) -> None:
        """Send a reply (or heartbeat, or announcement) to a caller's inbox.

        As the threaded transport's: mandatory where inboxes can come back;
        ``reply_ref`` with the reply that ends a call.
        """
        more: dict[str, Any] = {} if reply_ref is None else {"reply_ref": reply_ref}
        await self._driver.send(address, body, timeout=timeout, **self._reply_options, **more)

    async def _send_chunk(self, address: base.Address, body: bytes, timeout: float) -> None:
        """A stream's chunk, without waiting for a confirm (see the threaded transport's)."""
        await self._driver.send(address, body, timeout=timeout, confirm=False)

    async def _send_control(
        self, inbox: str, control_id: str, timeout: float, **fields: Any
    ) -> None:
        """Send a control message (credit, resume, cancel) to a server's call."""
        address = base.Address("", inbox, kind=base.REPLY)
        body = wire.encode_control(control_id, **fields)
        await self._driver.send(address, body, mandatory=True, timeout=timeout)

    async def _send_notification(
        self, target: Any, ctxt: Any, message: dict[str, Any], version: float, retry: Any = None
    ) -> None:
        """Send a notification; returns once the transport owns it."""
        address, body = self._notification(target, ctxt, message, version)
        await self._driver.send(address, body, retry=retry, timeout=self._default_timeout())

    async def _listen_for_notifications(
        self, targets_and_priorities: Iterable[tuple[Any, str]], pool: str | None
    ) -> asyncbase.AsyncListener:
        """Subscribe to ``<topic>.<priority>`` of every pair, shared with ``pool``."""
        addresses = self._notification_addresses(targets_and_priorities)
        return await self._driver.listen(addresses, pool=pool)

    async def _listen(self, target: Any) -> asyncbase.AsyncListener:
        """Subscribe to a server's requests: its topic, its own queue and the fanout."""
        return await self._driver.listen(self._server_addresses(target))

    # -- the end --------------------------------------------------------------

    async def cleanup(self) -> None:
        """Close the inbox and the driver; every pending call fails. Idempotent."""
        if self._cleaned:
            return
        self._cleaned = True
        inbox, self._inbox = self._inbox, None
        if inbox is not None:
            inbox.close()
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader
        routes, self._routes = self._routes, {}
        self._expiries.close()
        for route in routes.values():
            route.closed()
        await self._driver.close()

    async def __aenter__(self) -> AsyncTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.cleanup()


class _Expiries:
    """The watchers' deadlines, on one timer of the loop: the soonest.

    One timer for all, not one per call: a call that ended leaves no timer
    behind (the heap forgets it once half of it is such leftovers), and the
    loop's own timers stay few, which :mod:`rpcframe.aio.deadlines` counts
    on. A watcher whose deadline moved later (a heartbeat) is put back at
    its new deadline when the old one comes.
    """

    __slots__ = ("_transport", "_heap", "_order", "_dead", "_timer", "_armed_for")

    def __init__(self, transport: AsyncTransport) -> None:
        self._transport = transport
        self._heap: list[tuple[float, int, str, Watcher]] = []
        self._order = itertools.count()
        self._dead = 0  # entries of watchers no longer watched
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = float("inf")

    def add(self, msg_id: str, watcher: Watcher) -> None:
        deadline = watcher.deadline
        heapq.heappush(self._heap, (deadline, next(self._order), msg_id, watcher))
        if deadline < self._armed_for:
            self._arm(deadline)

    def dropped(self) -> None:
        """One watcher less: forget the leftovers once they are half of the heap."""
        self._dead += 1
        if self._dead * 2 > len(self._heap):
            routes = self._transport._routes
            self._heap = [entry for entry in self._heap if routes.get(entry[2]) is entry[3]]
            heapq.heapify(self._heap)
            self._dead = 0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._armed_for, self._heap, self._dead = None, float("inf"), [], 0

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed_for = deadline
        delay = max(0.0, deadline - time.monotonic())
        self._timer = asyncio.get_running_loop().call_later(delay, self._due)

    def _due(self) -> None:
        self._timer, self._armed_for = None, float("inf")
        heap, routes = self._heap, self._transport._routes
        now = time.monotonic()
        while heap and heap[0][0] <= now:
            _, _, msg_id, watcher = heapq.heappop(heap)
            if routes.get(msg_id) is not watcher:
                self._dead = max(0, self._dead - 1)
                continue  # unwatched meanwhile
            if now < watcher.deadline:  # a heartbeat moved it
                heapq.heappush(heap, (watcher.deadline, next(self._order), msg_id, watcher))
                continue
            routes.pop(msg_id, None)
            try:
                watcher.expired()
            except Exception:
                LOG.exception("A reply watcher failed")
        if heap:
            self._arm(heap[0][0])


def get_rpc_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
) -> AsyncTransport:
    """Build an asyncio RPC transport from ``url``, or ``conf.transport_url`` without one.

    The driver is the ``rpcframe.aio_drivers`` entry point the URL's scheme
    names. Nothing connects until the transport is first used, on the
    event loop that uses it.
    """
    if not isinstance(conf, cfg.ConfigOpts):
        raise TypeError(f"conf must be an oslo.config ConfigOpts, got {type(conf).__name__}")
    options.register_core(conf)
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(conf, url)
    driver = msg_transport._load_driver(conf, url, DRIVER_NAMESPACE, asyncbase.AsyncDriver)
    transport = AsyncTransport(driver)
    transport.allowed_remote_exmods = list(allowed_remote_exmods or [])
    return transport
