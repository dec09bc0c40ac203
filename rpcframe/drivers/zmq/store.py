"""Notifications kept in Redis streams (``zmq_notification_store = redis``).

Without a broker, a notification sent while no listener of its pool runs is
gone. With this store, a ZeroMQ transport sends notifications to Redis
instead of to the listening processes, and they wait there as they would in
RabbitMQ's queues:

* each notification address (exchange and ``topic.priority``) is a stream,
  ``<key_prefix>:stream:["<exchange>","<topic>.<priority>"]``, capped at
  about ``zmq_notification_stream_length`` entries (the oldest go first);
* each listener pool is a consumer group of that stream, named
  ``pool:<pool>``, and listeners without a pool share the group
  ``default``, which a sender creates with the stream: what is sent before
  any listener ran waits for the default group, as in the queue
  oslo.messaging's notifier declares; a named pool gets what is sent from
  its first listener on, as a RabbitMQ pool queue does;
* every listener is a consumer of its group: a reader thread takes up to
  :data:`WINDOW` entries at a time (``XREADGROUP``) into its mailbox, and
  acknowledges (``XACK``) what was handled, from the same thread;
* what a listener took and did not acknowledge (it crashed, or closed with
  messages it had not returned) stays pending in Redis; a listener of the
  same group takes it over once it has waited
  ``zmq_notification_claim_after`` seconds (``XAUTOCLAIM``). Delivery is at
  least once.

Redis down: a send fails (``TransportBroken``, retried by the notifier as
any send), readers retry each second and say so once.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.drivers.zmq.listener import Delivery, Subscription, ZmqListener

__all__ = ["WINDOW", "NotificationStore", "StoredDelivery", "StoredListener", "StoredZmqListener"]

LOG = logging.getLogger(__name__)

#: Entries a listener takes from Redis at a time, and keeps at most unreturned.
WINDOW = 64
#: Milliseconds a reader blocks in Redis before it looks at its acknowledgements again.
_BLOCK_MS = 200
_DEFAULT_GROUP = "default"
_BODY = b"b"
_consumers = itertools.count()


def group_of(pool: str | None) -> str:
    return f"pool:{pool}" if pool else _DEFAULT_GROUP


class NotificationStore:
    """A driver's notification streams in Redis; thread-safe."""

    def __init__(
        self,
        client_factory: Callable[[], Any],
        prefix: str,
        length: int,
        claim_after: float,
        describe: str,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        self._client = client_factory()
        self._prefix = prefix
        self._length = length
        self.claim_after = claim_after
        self.describe = describe
        self.errors = errors
        self._grouped: set[str] = set()  # streams whose default group this store made

    def key(self, address: base.Address) -> str:
        return f"{self._prefix}:stream:" + json.dumps(
            [address.exchange, address.topic], separators=(",", ":")
        )

    def add(self, address: base.Address, body: bytes) -> None:
        """Store one notification; raises TransportBroken if Redis does not take it."""
        key = self.key(address)
        try:
            if key not in self._grouped:
                self.ensure_group(key, _DEFAULT_GROUP, "0")
                self._grouped.add(key)
            self._client.xadd(key, {_BODY: body}, maxlen=self._length, approximate=True)
        except self.errors as exc:
            raise exceptions.TransportBroken(
                f"the notification store ({self.describe}) did not take the notification "
                f"for {address.topic!r}: {exc}"
            ) from exc

    def ensure_group(self, key: str, group: str, start: str) -> None:
        """Create ``group`` on the stream ``key`` (and the stream) unless it exists."""
        try:
            self._client.xgroup_create(key, group, id=start, mkstream=True)
        except self.errors as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def reader(self, listener: StoredListener) -> threading.Thread:
        thread = threading.Thread(
            target=_Reader(self, self._client, listener).run,
            name=f"rpcframe-zmq-store-{listener.consumer}",
            daemon=True,
        )
        thread.start()
        return thread

    def close(self) -> None:
        self._client.close()


class StoredDelivery(Delivery):
    """A notification taken from a stream; settling it acknowledges it in Redis."""

    __slots__ = ("key", "entry")

    def __init__(self, body: bytes, slot: str, key: str, entry: bytes) -> None:
        super().__init__(body, slot)
        self.key = key
        self.entry = entry

    def _ack(self) -> None:
        listener = self.listener
        if isinstance(listener, StoredListener):
            listener.settled(self)

    def _requeue(self) -> None:
        # Back to the front of this listener's mailbox, still pending in Redis.
        again = StoredDelivery(self.body, self.slot, self.key, self.entry)
        listener = self.listener
        if listener is not None and not listener.mailbox.put(again, front=True):
            LOG.info("A requeued notification stays pending in Redis: its listener closed")


class StoredListener(Subscription):
    """What a listener on a notification store is beside its mailbox: a consumer, a reader.

    ``close`` waits for the reader to end (a fraction of a second) unless
    :attr:`joins` is False (on an event loop, which must not wait).
    """

    joins = True

    def start_reading(self, store: NotificationStore, keys: Sequence[str], group: str) -> None:
        """Join the listener's group on each stream and start its reader thread."""
        self.store = store
        self.keys = list(keys)
        self.group = group
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{next(_consumers)}"
        self.acks: collections.deque[tuple[str, bytes]] = collections.deque()
        self.stopping = threading.Event()
        for key in self.keys:
            # A new pool gets what is sent from now on, as a new pool queue would.
            store.ensure_group(key, group, "0" if group == _DEFAULT_GROUP else "$")
        self._reader = store.reader(self)

    def settled(self, delivery: StoredDelivery) -> None:
        """Acknowledged by its handler (any thread): the reader tells Redis."""
        self.acks.append((delivery.key, delivery.entry))

    def hand_over(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            LOG.info(
                "ZeroMQ listener on %s closed with %d notifications it had not returned: they "
                "stay pending in Redis, for another listener of the pool in %s s",
                ", ".join(self.slots),
                len(deliveries),
                self.store.claim_after,
            )

    def close(self) -> None:
        stopping = getattr(self, "stopping", None)
        if stopping is not None:
            stopping.set()
        super().close()
        if self.joins:
            self.join_reader()

    def join_reader(self, timeout: float = 10.0) -> None:
        """Wait for the reader thread to end (after ``close``)."""
        reader = getattr(self, "_reader", None)
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)


class StoredZmqListener(StoredListener, ZmqListener):
    """A thread driver's listener of stored notifications."""


def stream_keys(
    store: NotificationStore, addresses: Sequence[base.Address], pool: str | None
) -> tuple[list[str], str]:
    """The streams a listener of ``addresses`` reads, and its group; all must be notifications."""
    if any(address.kind != base.NOTIFY for address in addresses):
        raise ValueError(
            "with zmq_notification_store=redis a listener takes notifications only, or "
            "requests only"
        )
    return [store.key(address) for address in addresses], group_of(pool)


class _Reader:
    """A stored listener's thread: acknowledge, take over stale entries, read new ones."""

    def __init__(self, store: NotificationStore, client: Any, listener: StoredListener) -> None:
        self._store = store
        self._client = client
        self._listener = listener
        self._down = False
        self._next_claim = 0.0

    def run(self) -> None:
        listener = self._listener
        while True:
            try:
                self._flush_acks()
                if listener.stopping.is_set():
                    return
                if len(listener.mailbox) >= WINDOW:
                    listener.stopping.wait(_BLOCK_MS / 1000)
                    continue
                self._claim()
                self._read()
                self._up()
            except Exception as exc:
                if listener.stopping.is_set():
                    return  # closing
                failure: BaseException = exc
                if not isinstance(exc, self._store.errors):
                    LOG.exception(
                        "ZeroMQ notification store: the reader of %s failed; it starts again "
                        "in a second",
                        ", ".join(listener.slots),
                    )
                elif "NOGROUP" in str(exc):  # Redis restarted empty: join again
                    try:
                        self._rejoin()
                        continue
                    except self._store.errors as again:
                        failure = again
                self._went_down(failure)
                if listener.stopping.wait(1.0):
                    return

    def _flush_acks(self) -> None:
        listener = self._listener
        acks = listener.acks
        by_stream: dict[str, list[bytes]] = {}
        while acks:
            key, entry = acks.popleft()
            by_stream.setdefault(key, []).append(entry)
        for key, entries in by_stream.items():
            try:
                self._client.xack(key, listener.group, *entries)
            except self._store.errors:
                acks.extend((key, entry) for entry in entries)  # next time
                raise

    def _claim(self) -> None:
        now = time.monotonic()
        if now < self._next_claim:
            return
        self._next_claim = now + max(0.1, self._store.claim_after / 2)
        listener = self._listener
        for key in listener.keys:
            answer = self._client.xautoclaim(
                key,
                listener.group,
                listener.consumer,
                min_idle_time=int(self._store.claim_after * 1000),
                start_id="0-0",
                count=WINDOW,
            )
            self._hand(key, answer[1])

    def _read(self) -> None:
        listener = self._listener
        answer = self._client.xreadgroup(
            listener.group,
            listener.consumer,
            dict.fromkeys(listener.keys, ">"),
            count=WINDOW - len(listener.mailbox),
            block=_BLOCK_MS,
        )
        for key, entries in answer or ():
            self._hand(key.decode() if isinstance(key, bytes) else key, entries)

    def _hand(self, key: str, entries: Sequence[Any]) -> None:
        listener = self._listener
        slot = listener.slots[listener.keys.index(key)]
        for entry, fields in entries:
            body = fields.get(_BODY) if fields else None
            if not isinstance(body, bytes):
                LOG.warning(
                    "ZeroMQ notification store: dropping entry %s of %s: no body field", entry, key
                )
                listener.acks.append((key, entry))
                continue
            delivery = StoredDelivery(body, slot, key, entry)
            delivery.listener = listener
            if not listener.mailbox.put(delivery):
                return  # closed: the rest stays pending in Redis

    def _rejoin(self) -> None:
        listener = self._listener
        for key in listener.keys:
            self._store.ensure_group(key, listener.group, "0")

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            LOG.warning(
                "ZeroMQ notification store: %s is unreachable (%s); the listener on %s waits "
                "for it",
                self._store.describe,
                exc,
                ", ".join(self._listener.slots),
            )

    def _up(self) -> None:
        if self._down:
            self._down = False
            LOG.warning("ZeroMQ notification store: %s answers again", self._store.describe)
