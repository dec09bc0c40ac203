"""The ``fake://`` driver: an in-memory broker for one process.

It behaves like RabbitMQ with oslo.messaging's queue layout, so code tested
on it meets the same rules in production: a request queue per topic shared
round-robin by its servers, a queue per server, a fanout queue per listener,
notification queues that exist from the first send and keep messages until a
listener takes them, pools sharing one queue, requeue, expiry, ``mandatory``
routing, and private reply inboxes. Bodies are the same encoded bytes the
real drivers carry.

Every transport opened on the same ``fake://[host]/[virtual_host]`` URL in a
process shares one broker, so a service's client and server may build their
own transports as they would in production. The broker lives while any of
those transports is open: closing them all (``transport.cleanup()``, which
``ConfFixture`` and the test fixtures do) forgets every queue, so tests do not
leak messages into each other.

Two modes. By default the fake is as lenient as oslo.messaging's, so that a
service's existing unit tests pass unchanged: beside the encoded body it
hands the receiver the caller's context object, and the caller the
endpoint's result object and exception, as they are, and warns once per
kind of difference what a real transport would do instead
(:mod:`rpcframe.leniency`). ``fake://?strict=true`` (or ``[oslo_messaging_fake]
strict``) hands over nothing but the body, exactly as production does, so
the same tests find the bugs production would show.

Servers on it take turns to receive, as on RabbitMQ (the driver does not
declare ``concurrent_poll``); ``fake://?concurrent_poll=true`` declares it,
for testing the other path of :mod:`rpcframe.server`.

Nothing here polls or sleeps: a poll blocks on the listener's own queue and
wakes when a message is pushed or the listener is closed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import queue
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions, leniency
from rpcframe.drivers import asyncbase, base

__all__ = ["AsyncFakeDriver", "FakeDriver", "FakeExchangeManager", "fake_opts"]

LOG = logging.getLogger(__name__)

_CLOSED = object()  # wakes a poll blocked on a closing listener
_EXPIRED = object()  # a message that expired in a listener's buffer: poll reads on


class _Delivery(base.IncomingMessage):
    __slots__ = ("queue", "listener", "expires_at", "attachments")

    def __init__(
        self,
        body: bytes,
        queue_: _Queue,
        expires_at: float | None,
        attachments: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(body)
        self.queue = queue_
        self.listener: _Listener | None = None
        self.expires_at = expires_at
        #: In-process objects handed over beside the body (lenient mode only).
        self.attachments = attachments

    def _ack(self) -> None:
        listener = self.listener
        if listener is not None:
            listener.unacked.discard(self)

    def _requeue(self) -> None:
        listener = self.listener
        if listener is not None:
            listener.unacked.discard(self)
        self.queue.broker.redeliver(self)


class _Queue:
    """A named queue: pushes to its consumers round-robin, or keeps a backlog."""

    __slots__ = ("broker", "name", "consumers", "backlog", "turn", "exclusive")

    def __init__(self, broker: _Broker, name: str, exclusive: bool) -> None:
        self.broker = broker
        self.name = name
        self.consumers: list[_Listener] = []
        self.backlog: collections.deque[_Delivery] = collections.deque()
        self.turn = 0
        self.exclusive = exclusive

    def push(self, delivery: _Delivery, front: bool = False) -> None:
        """Hand a delivery to the next consumer. Called with the broker lock held."""
        consumers = self.consumers
        if consumers:
            self.turn = (self.turn + 1) % len(consumers)
            consumers[self.turn].hand(delivery)
        elif front:
            self.backlog.appendleft(delivery)
        else:
            self.backlog.append(delivery)


class _Broker:
    """Queues and bindings of one virtual host, shared by its transports."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.queues: dict[str, _Queue] = {}
        self.bindings: dict[tuple[str, str], list[_Queue]] = {}
        self.users = 0
        #: topic -> exchanges with fanout listeners (for the lenient mode's warning)
        self.fanout_exchanges: dict[str, set[str]] = {}

    def declare(
        self, name: str, keys: Sequence[tuple[str, str]], exclusive: bool = False
    ) -> _Queue:
        """Create (or find) a queue and bind it. Called with the lock held."""
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = _Queue(self, name, exclusive)
        for key in keys:
            bound = self.bindings.setdefault(key, [])
            if q not in bound:
                bound.append(q)
        return q

    def delete(self, q: _Queue) -> None:
        """Remove a queue, its bindings and its messages. Lock held."""
        self.queues.pop(q.name, None)
        for key, bound in list(self.bindings.items()):
            if q in bound:
                bound.remove(q)
                if not bound:
                    del self.bindings[key]
        q.backlog.clear()

    def publish(
        self,
        key: tuple[str, str],
        body: bytes,
        expires_at: float | None,
        mandatory: bool,
        declare: str | None,
        attachments: dict[str, Any] | None = None,
    ) -> None:
        with self.lock:
            if declare is not None:
                self.declare(declare, [key])
            bound = self.bindings.get(key)
            if not bound:
                if mandatory:
                    raise exceptions.MessageUndeliverable(None, key[0], key[1], body)
                LOG.debug("fake: no queue bound to %s/%s, message dropped", *key)
                return
            for q in bound:
                q.push(_Delivery(body, q, expires_at, attachments))

    def redeliver(self, delivery: _Delivery) -> None:
        """Put a message back at the front of its queue, as a new delivery."""
        with self.lock:
            q = delivery.queue
            if self.queues.get(q.name) is not q:
                LOG.debug("fake: queue %s is gone, requeued message dropped", q.name)
                return
            q.push(
                _Delivery(delivery.body, q, delivery.expires_at, delivery.attachments), front=True
            )


class FakeExchangeManager:
    """Brokers by URL, alive while a transport uses them.

    The mapping is a class attribute under oslo.messaging's name, so a test
    that replaces ``FakeExchangeManager._exchanges`` with an empty dict (as
    oslo's own tests do) gives every transport it builds afterwards a new,
    empty broker.
    """

    _exchanges: dict[tuple[Any, ...], _Broker] = {}
    _lock = threading.Lock()

    def acquire(self, key: tuple[Any, ...]) -> _Broker:
        with self._lock:
            brokers = type(self)._exchanges
            broker = brokers.get(key)
            if broker is None:
                broker = brokers[key] = _Broker()
            broker.users += 1
            return broker

    def release(self, key: tuple[Any, ...], broker: _Broker) -> None:
        with self._lock:
            broker.users -= 1
            brokers = type(self)._exchanges
            if broker.users <= 0 and brokers.get(key) is broker:
                del brokers[key]


_registry = FakeExchangeManager()


class _Listener(base.Inbox):
    def __init__(self, driver: FakeDriver) -> None:
        self._driver = driver
        self._buffer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self.queues: list[_Queue] = []
        self.unacked: set[_Delivery] = set()

    def hand(self, delivery: _Delivery) -> None:
        self._buffer.put(delivery)

    def subscribe(self, q: _Queue) -> None:
        """Start consuming ``q``, taking over its backlog. Broker lock held."""
        self.queues.append(q)
        q.consumers.append(self)
        while q.backlog:
            self._buffer.put(q.backlog.popleft())

    def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        buffer = self._buffer
        while True:
            if self._closed:
                return None
            try:
                if deadline is None:
                    item = buffer.get()
                else:
                    left = deadline - time.monotonic()
                    item = buffer.get(timeout=left) if left > 0 else buffer.get_nowait()
            except queue.Empty:
                return None
            delivered = self._hand_out(item)
            if delivered is not _EXPIRED:
                return delivered  # type: ignore[no-any-return]

    def _hand_out(self, item: Any) -> Any:
        """What ``poll`` returns for an item from the buffer.

        None once closed (the closing marker, or closed meanwhile: the item
        goes back to its queue); :data:`_EXPIRED` for an expired
        message (poll reads on); else the delivery, now unacknowledged here.
        """
        if item is _CLOSED:
            self._buffer.put(_CLOSED)  # and wake the next poller blocked here
            return None
        if item.expires_at is not None and item.expires_at < time.monotonic():
            LOG.debug("fake: message on %s expired before delivery", item.queue.name)
            return _EXPIRED
        with self._lock:
            if self._closed:
                self._driver.broker.redeliver(item)
                return None
            item.listener = self
            self.unacked.add(item)
        return item

    def pending(self) -> bool:
        return not self._closed and not self._buffer.empty()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        broker = self._driver.broker
        with broker.lock:
            for q in self.queues:
                if self in q.consumers:
                    q.consumers.remove(self)
                if q.exclusive:
                    broker.delete(q)
        # Messages pushed but never polled go back to their queues; messages
        # already polled stay with their holder, who still acks or requeues them.
        pending = []
        while True:
            try:
                item = self._buffer.get_nowait()
            except queue.Empty:
                break
            if item is not _CLOSED:
                pending.append(item)
        self._buffer.put(_CLOSED)
        for delivery in pending:
            broker.redeliver(delivery)

    def release_unsettled(self) -> None:
        """Requeue what was polled but never settled (the transport is closing)."""
        for delivery in list(self.unacked):
            if not delivery.settled:
                delivery._settle("requeued (transport closed)")
                self._driver.broker.redeliver(delivery)
        self.unacked.clear()


GROUP = "oslo_messaging_fake"

fake_opts = [
    cfg.BoolOpt(
        "strict",
        default=False,
        help="Make fake:// behave exactly as a real transport: the endpoint gets "
        "the context as a dict rebuilt from the wire, the caller gets the result "
        "as JSON carries it and remote errors as production raises them. By "
        "default the fake is as lenient as oslo.messaging's (it hands those "
        "objects over as they are) and warns once per kind of difference. The "
        "transport URL's ?strict=true overrides it.",
    ),
    cfg.BoolOpt(
        "concurrent_poll",
        default=False,
        help="Let every idle server worker poll a listener at once (the "
        "concurrent_poll capability), waking one per message. Off by default, "
        "as on RabbitMQ, so that servers on fake:// take turns to receive "
        "exactly as they do in production; for testing that other path. The "
        "transport URL's ?concurrent_poll=true overrides it.",
    ),
]


class FakeDriver(base.Driver):
    """In-memory transport; see the module documentation."""

    capabilities = base.Capabilities(passes_objects=True)

    def __init__(self, conf: Any, url: Any) -> None:
        super().__init__(conf, url)
        options = base.driver_options(conf, GROUP, fake_opts, url.query)
        self._lenient = not options.strict
        # Production's behaviour, strict: nothing but the encoded body travels.
        self.capabilities = dataclasses.replace(
            self.capabilities,
            passes_objects=not options.strict,
            concurrent_poll=options.concurrent_poll,
        )
        key = (tuple(h.hostname for h in url.hosts), url.virtual_host or "")
        self.broker = _registry.acquire(key)
        self._lock = threading.Lock()
        self._closed = False
        self._listeners: weakref.WeakSet[_Listener] = weakref.WeakSet()
        self._release = weakref.finalize(self, _registry.release, key, self.broker)

    # -- sending ------------------------------------------------------------

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
        attachments: dict[str, Any] | None = None,
    ) -> None:
        # Delivery is synchronous in memory: confirmed or not, the broker owns it now.
        if self._closed:
            raise exceptions.TransportClosed("the fake transport is closed")
        if not isinstance(body, bytes):
            raise TypeError(f"a message body must be bytes, got {type(body).__name__}")
        expires_at = None if expiry is None else time.monotonic() + expiry
        declare = None
        if address.kind == base.REPLY:
            key = ("", address.topic)
        elif address.kind == base.NOTIFY:
            key = (address.exchange, address.topic)
            declare = f"{address.exchange}:{address.topic}"
        elif address.fanout:
            key = self._fanout_key(address)
            if self._lenient:
                others = self.broker.fanout_exchanges.get(address.topic, set()) - {address.exchange}
                if others:
                    leniency.fanout_in_one_exchange(address.topic, address.exchange, others)
        elif address.server:
            key = (address.exchange, f"{address.topic}.{address.server}")
        else:
            key = (address.exchange, address.topic)
        self.broker.publish(key, body, expires_at, mandatory, declare, attachments)

    # -- receiving ----------------------------------------------------------

    def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> base.Listener:
        listener = self._new_listener()
        broker = self.broker
        with broker.lock:
            pool_keys = []
            for address in addresses:
                if address.kind == base.NOTIFY:
                    key = (address.exchange, address.topic)
                    if pool:
                        pool_keys.append(key)
                    else:
                        listener.subscribe(
                            broker.declare(f"{address.exchange}:{address.topic}", [key])
                        )
                elif address.kind == base.REPLY:
                    raise ValueError("reply addresses come from open_inbox(), not listen()")
                elif address.fanout:
                    name = f"{address.topic}_fanout_{uuid.uuid4().hex}"
                    fkey = self._fanout_key(address)
                    listener.subscribe(broker.declare(name, [fkey], exclusive=True))
                    broker.fanout_exchanges.setdefault(address.topic, set()).add(address.exchange)
                elif address.server:
                    routing = f"{address.topic}.{address.server}"
                    listener.subscribe(
                        broker.declare(
                            f"{address.exchange}:{routing}", [(address.exchange, routing)]
                        )
                    )
                else:
                    key = (address.exchange, address.topic)
                    listener.subscribe(broker.declare(f"{address.exchange}:{address.topic}", [key]))
            if pool_keys:
                listener.subscribe(broker.declare(f"pool:{pool}", pool_keys))
        return listener

    def _fanout_key(self, address: base.Address) -> tuple[str, str]:
        # On RabbitMQ a fanout exchange is named after the topic alone, so a
        # fanout cast reaches the topic's servers in every exchange; oslo's
        # fake keeps it within the target's exchange, and the lenient mode does.
        if self._lenient:
            return (f"{address.exchange}/{address.topic}_fanout", address.topic)
        return (f"{address.topic}_fanout", address.topic)

    def open_inbox(self) -> base.Inbox:
        listener = self._new_listener()
        name = f"reply_{uuid.uuid4().hex}"
        listener.address = base.Address("", name, kind=base.REPLY)
        with self.broker.lock:
            listener.subscribe(self.broker.declare(f"reply:{name}", [("", name)], exclusive=True))
        return listener

    def _new_listener(self) -> _Listener:
        with self._lock:
            if self._closed:
                raise exceptions.TransportClosed("the fake transport is closed")
            listener = self._make_listener()
            self._listeners.add(listener)
        return listener

    def _make_listener(self) -> _Listener:
        return _Listener(self)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener.close()
            listener.release_unsettled()
        self._release()


# -- asyncio ----------------------------------------------------------------------


class _LoopBuffer:
    """A listener's buffer on an event loop: filled from any thread, read by one task."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(self, item: Any) -> None:
        if threading.get_ident() == self._thread:
            self._queue.put_nowait(item)
            return
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody will read this listener again
            if isinstance(item, _Delivery):
                item.queue.broker.redeliver(item)

    def get_nowait(self) -> Any:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            raise queue.Empty from None

    def empty(self) -> bool:
        return self._queue.empty()

    async def get(self, timeout: float | None) -> Any:
        if timeout is None:
            return await self._queue.get()
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            raise queue.Empty from None


class _AsyncListener(_Listener, asyncbase.AsyncInbox):
    """A fake listener read by a task: the same queues, pushed onto the loop."""

    def __init__(self, driver: FakeDriver, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(driver)
        self._buffer = _LoopBuffer(loop)  # type: ignore[assignment]

    async def poll(  # type: ignore[override]
        self, timeout: float | None = None
    ) -> base.IncomingMessage | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        buffer: _LoopBuffer = self._buffer  # type: ignore[assignment]
        while True:
            if self._closed:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                item = buffer.get_nowait() if left == 0 else await buffer.get(left)
            except queue.Empty:
                return None
            delivered = self._hand_out(item)
            if delivered is not _EXPIRED:
                return delivered  # type: ignore[no-any-return]


class _LoopFakeDriver(FakeDriver):
    """The thread fake, making listeners for one event loop."""

    def __init__(self, conf: Any, url: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(conf, url)
        self._loop = loop

    def _make_listener(self) -> _Listener:
        return _AsyncListener(self, self._loop)


class AsyncFakeDriver(asyncbase.AsyncDriver):
    """``fake://`` for :mod:`rpcframe.aio`: the same in-memory broker as the thread fake.

    Transports of both kinds opened on one ``fake://`` URL in a process share
    its queues, so a threaded client can call an asyncio server and the
    reverse, as on a real broker. Sending is done at once (the broker is in
    memory); listeners are fed on the loop that opened them, from whatever
    thread sent. Nothing but the encoded body travels (the lenient mode's
    objects are for threaded tests written for oslo.messaging).
    """

    def __init__(self, conf: Any, url: Any) -> None:
        super().__init__(conf, url)
        self._sync: _LoopFakeDriver | None = None
        self._conf_url = (conf, url)
        self._closed = False
        self.capabilities = dataclasses.replace(
            FakeDriver.capabilities, passes_objects=False, concurrent_poll=False
        )

    def _driver(self) -> _LoopFakeDriver:
        if self._closed:
            raise exceptions.TransportClosed("the fake transport is closed")
        if self._sync is None:
            conf, url = self._conf_url
            self._sync = _LoopFakeDriver(conf, url, asyncio.get_running_loop())
        return self._sync

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
        self._driver().send(address, body, expiry=expiry, mandatory=mandatory)

    async def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> asyncbase.AsyncListener:
        return self._driver().listen(addresses, pool=pool)  # type: ignore[return-value]

    async def open_inbox(self) -> asyncbase.AsyncInbox:
        return self._driver().open_inbox()  # type: ignore[return-value]

    async def close(self) -> None:
        self._closed = True
        if self._sync is not None:
            self._sync.close()
