"""The ZeroMQ driver for :mod:`rpcframe.aio`: the same node, run by the event loop.

:class:`AsyncZmqDriver` speaks what :class:`~rpcframe.drivers.zmq.driver.
ZmqDriver` speaks (the same framing, acknowledgements, name-service records
and routing, from :class:`~rpcframe.drivers.zmq.driver.ZmqRoutes`), so an
asyncio process and a threaded one call each other, and a process of either
kind finds the other's servers in Redis.

Its node is a :class:`LoopNode`: a :class:`~rpcframe.drivers.zmq.node.Node`
whose I/O loop is the event loop, not a thread. The loop watches each
socket's ``ZMQ_FD`` with ``add_reader`` (what ``zmq.asyncio`` does beneath
its futures) and runs a node turn when one is readable, when a timer of
:mod:`.peers` is due and after a send that asks for one; a turn reads every
socket until none is readable, as the thread's does. Nothing is handed from
thread to thread: a task writes its message itself, the turn puts what it
reads straight into the listeners' mailboxes, and a send's outcome is a
future the same turn completes. A process has one such node per event loop
(and per settings), apart from the thread node its threaded drivers share.

What may wait on the network outside ZeroMQ runs in a worker thread so the
loop never waits: a Redis look-up that the cache cannot answer, registering
and unregistering in Redis, starting the name service and closing the node.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers import asyncbase, base
from rpcframe.drivers.zmq import errors, node, store
from rpcframe.drivers.zmq.driver import ZmqRoutes
from rpcframe.drivers.zmq.listener import Delivery, Subscription
from rpcframe.drivers.zmq.matchmaker import Matchmaker, member

__all__ = ["AsyncZmqDriver", "LoopNode", "StoredAsyncListener"]

LOG = logging.getLogger(__name__)


class LoopNode(node.Node):
    """A node run by an event loop (see the module documentation).

    Built in any thread; everything after runs on ``owner``, the loop's
    thread (a write from another thread wakes the loop through the node's
    wake-up socket, as for the thread node).
    """

    def __init__(
        self,
        settings: node.Settings,
        matchmaker: Matchmaker,
        loop: asyncio.AbstractEventLoop,
        owner: int,
    ) -> None:
        self.loop = loop
        self._owner = owner
        self._readers: dict[int, Any] = {}  # fd -> the socket it was added for
        self._seen_version = -1
        self._timer: asyncio.TimerHandle | None = None
        self._turn_due = False
        super().__init__(settings, matchmaker)

    def _start(self) -> None:
        self.loop.call_soon_threadsafe(self._soon)

    def _wake(self) -> None:
        if threading.get_ident() != self._owner:
            super()._wake()
            return
        if self._closed:
            raise exceptions.TransportClosed("the ZeroMQ node is closed")
        self._soon()

    def _adopt(self, sock: Any) -> None:
        with self._io_lock:
            self._router = sock
            self._watched.register(sock)
        self._soon()

    def _soon(self) -> None:
        if not self._turn_due and not self._stopping:
            self._turn_due = True
            self.loop.call_soon(self._turn)

    def _turn(self) -> None:
        self._turn_due = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._io_lock:
            if self._stopping:
                return
            try:
                idle = self._read_all()
            except Exception:
                LOG.exception("ZeroMQ I/O loop failed; the node stops")
                self._stopping = True
            if self._stopping:
                self._stop_here()
                return
            self._watch()
            timeout = self._next_timeout() if idle else 0.0
            self._sleep_until = None if timeout is None else time.monotonic() + timeout
        if not idle:
            self._soon()  # a socket may still be readable and its descriptor not say so
        elif timeout is not None:
            self._timer = self.loop.call_later(timeout, self._turn)

    def _watch(self) -> None:
        """Make the loop's readers the watched sockets' descriptors. I/O lock held."""
        watched = self._watched
        if watched.version == self._seen_version:
            return
        self._seen_version = watched.version
        readers = self._readers
        for fd, sock in list(readers.items()):
            if watched.by_fd.get(fd) is not sock:  # gone, or its number reused
                self.loop.remove_reader(fd)
                del readers[fd]
        for fd, sock in watched.by_fd.items():
            if fd not in readers:
                self.loop.add_reader(fd, self._turn)
                readers[fd] = sock

    def _stop_here(self) -> None:
        """Stop watching, then close the sockets (I/O lock held, on the loop)."""
        self._stopping = True
        for fd in self._readers:
            self.loop.remove_reader(fd)
        self._readers.clear()
        self._shutdown()

    def stop_io(self) -> None:
        with self._io_lock:
            if not self._stopping:  # else the loop stopped itself, and closed its sockets
                self._stop_here()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class AsyncMailbox:
    """A listener's deliveries on its event loop, read by one task at a time.

    ``put`` comes from the node's turn on the loop (from another thread it
    is passed to the loop); ``close`` wakes the reader.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._owner = threading.get_ident()
        self._items: collections.deque[Delivery] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False

    def put(self, item: Delivery, front: bool = False) -> bool:
        """Add ``item``; False when the mailbox is closed (the item is not taken)."""
        if threading.get_ident() != self._owner:
            try:
                self._loop.call_soon_threadsafe(self.put, item, front)
            except RuntimeError:  # the loop is closed: nobody reads this mailbox again
                return False
            return True
        if self.closed:
            return False
        if front:
            self._items.appendleft(item)
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def get(self, timeout: float | None) -> Delivery | None:
        loop = self._loop
        deadline = None if timeout is None else loop.time() + timeout
        while not self._items:
            if self.closed or (deadline is not None and loop.time() >= deadline):
                return None
            self._waiter = waiter = loop.create_future()
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                return None
            finally:
                self._waiter = None
        return None if self.closed else self._items.popleft()

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> list[Delivery]:
        """Close, wake the reader, and return what was never taken."""
        self.closed = True
        left = list(self._items)
        self._items.clear()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return left


class AsyncZmqListener(Subscription, asyncbase.AsyncInbox):
    """A subscription of an asyncio driver, fed by its loop's node."""

    mailbox: AsyncMailbox
    #: Its records being removed from the name service, once closed (a worker thread's).
    unregistering: asyncio.Future[Any] | None = None

    async def wait_closed(self) -> None:
        if self.unregistering is not None:
            await asyncio.shield(self.unregistering)

    async def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        delivery = await self.mailbox.get(timeout)
        if delivery is not None:
            delivery.listener = self
        return delivery


class StoredAsyncListener(store.StoredListener, AsyncZmqListener):
    """An asyncio driver's listener of stored notifications, fed by its reader thread."""

    joins = False


class _Batch:
    """The outgoing messages of one ``send``; ``done`` completes when each has an outcome."""

    __slots__ = ("left", "done", "outcomes")

    def __init__(self, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.left = count
        self.done: asyncio.Future[None] = loop.create_future()
        self.outcomes: list[node.Outgoing] = []

    def finished(self, outgoing: node.Outgoing) -> None:  # on the loop, in a node turn or send
        self.outcomes.append(outgoing)
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)


class AsyncZmqDriver(ZmqRoutes, asyncbase.AsyncDriver):
    """``zmq://`` and ``zmq+redis://`` for :mod:`rpcframe.aio`; see the module documentation.

    The options, URL forms, capabilities and guarantees are the thread
    driver's. Nothing is started until first use, on the loop that uses it.
    """

    capabilities = dataclasses.replace(ZmqRoutes.capabilities, concurrent_poll=False)

    def __init__(self, conf: cfg.ConfigOpts, url: Any) -> None:
        super().__init__(conf, url)
        self._made = self._settings(conf, url)  # bad options fail here, not at first use
        self._node: LoopNode | None = None  # type: ignore[assignment]
        self._starting: asyncio.Lock | None = None
        self._closed = False
        self._listeners: set[AsyncZmqListener] = set()
        self._registrations: dict[int, list[tuple[str, str]]] = {}
        self._unregistering: set[asyncio.Future[Any]] = set()
        self._release: weakref.finalize | None = None

    async def _loop_node(self) -> LoopNode:
        if self._node is not None:
            if self._node.loop is not asyncio.get_running_loop():
                raise exceptions.ConfigurationError(
                    "this asyncio ZeroMQ transport belongs to the event loop that first used "
                    "it; build a transport for each event loop"
                )
            return self._node
        if self._closed:
            raise errors.closed()
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._node is None:
                loop = asyncio.get_running_loop()
                settings, make_matchmaker = self._made
                with errors.mapped("starting the ZeroMQ node"):
                    built = await asyncio.to_thread(
                        node.acquire,
                        settings,
                        make_matchmaker,
                        build=LoopNode,
                        key=(loop, threading.get_ident()),
                    )
                self._node = built  # type: ignore[assignment]
                self._release = weakref.finalize(self, node.release, built)
        assert self._node is not None
        return self._node

    # -- sending ------------------------------------------------------------

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
        reply_ref: str | None = None,
        **more: Any,
    ) -> None:
        self._check_send(body)
        if self._store is not None and address.kind == base.NOTIFY:
            await asyncio.to_thread(self._store.add, address, body)
            return
        here = await self._loop_node()
        record = self._record(address)
        if address.kind == base.REPLY:
            groups = self._inbox_group(address)
        else:
            matchmaker = here.matchmaker
            found = matchmaker.cached(record)
            if found is None:
                with errors.mapped(f"looking up {address.topic!r} in the name service"):
                    found = await asyncio.to_thread(matchmaker.lookup, record)
            groups = self._groups(address, record, found)
        if not groups:
            self._nobody(address, body, mandatory, confirm)
            return
        batch = _Batch(len(groups), here.loop)
        outgoing, timeout = self._outgoing(
            address, body, groups, record, retry, timeout, confirm, expiry, batch.finished,
            reply_ref,
        )  # fmt: skip
        here.send(outgoing)
        if batch.left:
            try:
                async with asyncio.timeout(timeout + 1.0):
                    await batch.done
            except TimeoutError:
                raise exceptions.MessagingTimeout(
                    f"sending to {address.topic!r} did not finish in {timeout} s", timeout=timeout
                ) from None
        self._outcome(address, body, batch.outcomes, mandatory)

    # -- receiving ----------------------------------------------------------

    async def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> asyncbase.AsyncListener:
        slots, records = self._slots(addresses, pool)
        streams = self._stream_keys(addresses, pool)
        if self._store is None or streams is None:
            return await self._subscribe(slots, records)
        if self._closed:
            raise errors.closed()
        here = await self._loop_node()
        listener = StoredAsyncListener(
            slots, AsyncMailbox(here.loop), self._unsubscribe, here.hand_over
        )
        with errors.mapped("joining the notification store"):
            await asyncio.to_thread(listener.start_reading, self._store, *streams)
        self._listeners.add(listener)
        return listener

    async def open_inbox(self) -> asyncbase.AsyncInbox:
        here = await self._loop_node()
        with errors.mapped("opening the ZeroMQ listening socket"):
            endpoint = here.listen_endpoint()
        slots, address = self._inbox_slots(endpoint)
        return await self._subscribe(slots, [], address)

    async def _subscribe(
        self,
        slots: list[str],
        records: list[tuple[str, str | None]],
        address: base.Address | None = None,
    ) -> AsyncZmqListener:
        if self._closed:
            raise errors.closed()
        here = await self._loop_node()
        with errors.mapped("opening the ZeroMQ listening socket"):
            endpoint = here.listen_endpoint()
        registrations = [(record, member(endpoint, pool)) for record, pool in records]
        listener = AsyncZmqListener(
            slots, AsyncMailbox(here.loop), self._unsubscribe, here.hand_over, address
        )
        with errors.mapped("registering in the name service"):
            if here.matchmaker.blocking and registrations:
                await asyncio.to_thread(here.subscribe, listener, registrations)
            else:
                here.subscribe(listener, registrations)
        if self._closed:  # closed while registering
            listener.close()
            raise errors.closed()
        self._listeners.add(listener)
        self._registrations[id(listener)] = registrations
        return listener

    def _unsubscribe(self, listener: Any) -> None:
        self._listeners.discard(listener)
        registrations = self._registrations.pop(id(listener), [])
        here = self._node
        if here is None:
            return
        if not (here.matchmaker.blocking and registrations):
            here.unsubscribe(listener, registrations)
            return
        # Nothing is delivered to it from now on (a sender is told "noroute"
        # and tries the next process); the records go in a worker thread.
        here.unsubscribe(listener, [])
        matchmaker = here.matchmaker

        def unregister() -> None:
            for record, value in registrations:
                matchmaker.unregister(record, value)

        gone = here.loop.run_in_executor(None, unregister)
        listener.unregistering = gone
        self._unregistering.add(gone)
        gone.add_done_callback(self._unregistering.discard)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        listeners = list(self._listeners)
        for listener in listeners:
            listener.close()
        if self._unregistering:
            await asyncio.gather(*self._unregistering, return_exceptions=True)
        if self._store is not None:
            stored = [each for each in listeners if isinstance(each, StoredAsyncListener)]

            def stop_reading() -> None:
                for each in stored:
                    each.join_reader()
                self._store.close()  # type: ignore[union-attr]

            await asyncio.to_thread(stop_reading)
        here, self._node = self._node, None
        if here is None or self._release is None:
            return
        self._release.detach()
        if node.forget(here):
            here.stop_io()
            await asyncio.to_thread(here.finish_close)
