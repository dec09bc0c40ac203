"""Listeners and inboxes of the ZeroMQ driver: a mailbox per listener, filled by the node.

The node's I/O loop puts each message it accepted for a listener into that
listener's :class:`Mailbox` and only then acknowledges it to the sender: a
message is the listener's from then on. ``poll`` takes from the mailbox
(several threads may poll at once: the driver declares ``concurrent_poll``).
``requeue`` puts a message back at the front of its listener's mailbox, or
hands it to another listener of the same subscription in this process.
Closing a listener hands what it had not returned to another listener of the
same subscription in this process; with none, the messages are dropped and
the log says how many (no other process is asked: a brokerless transport
keeps nothing for a listener that is gone).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe import handoffs
from rpcframe.drivers import base

__all__ = ["Delivery", "Mailbox", "Subscription", "ZmqListener"]

LOG = logging.getLogger(__name__)


class Delivery(base.IncomingMessage):
    """One message taken from a listener's mailbox."""

    __slots__ = ("listener", "slot")

    def __init__(self, body: bytes, slot: str) -> None:
        super().__init__(body)
        self.slot = slot  # the local subscription it came through
        self.listener: Subscription | None = None

    def _ack(self) -> None:
        # The sender had its acknowledgement when the message reached the
        # mailbox; handling it is the listener's business.
        pass

    def _requeue(self) -> None:
        again = Delivery(self.body, self.slot)
        listener = self.listener
        if listener is not None and listener.mailbox.put(again, front=True):
            return
        if listener is not None:
            listener.hand_over([again])


class Mailbox:
    """A queue of deliveries that any number of pollers wait on; ``close`` wakes them all."""

    def __init__(self) -> None:
        self._items: collections.deque[Delivery] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self.closed = False

    def put(self, item: Delivery, front: bool = False) -> bool:
        """Add ``item``; False when the mailbox is closed (the item is not taken)."""
        if handoffs.hook is not None:
            handoffs.hook("zmq.deliver")
        with self._cond:
            if self.closed:
                return False
            if front:
                self._items.appendleft(item)
            else:
                self._items.append(item)
            self._cond.notify()
        return True

    def get(self, timeout: float | None) -> Delivery | None:
        with self._cond:
            if not self._items and not self.closed:
                if timeout is None:
                    while not self._items and not self.closed:
                        self._cond.wait()
                else:
                    deadline = time.monotonic() + timeout
                    while not self._items and not self.closed:
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._cond.wait(left):
                            break
            if self.closed or not self._items:
                return None
            return self._items.popleft()

    def __bool__(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def close(self) -> list[Delivery]:
        """Close, wake every poller, and return what was never taken."""
        with self._cond:
            self.closed = True
            left = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        return left


class Subscription:
    """What a listener of either kind is to the node: slots, a mailbox, and how it hands over.

    :param mailbox: where the node puts the listener's messages: a
        :class:`Mailbox`, or a mailbox with the same ``put`` and ``close``
        on an event loop.
    """

    def __init__(
        self,
        slots: Sequence[str],
        mailbox: Any,
        unsubscribe: Callable[[Any], None],
        hand_over: Callable[[Any, list[Delivery]], int],
        address: base.Address | None = None,
    ) -> None:
        self.slots = list(slots)
        self.mailbox = mailbox
        self._unsubscribe = unsubscribe
        self._hand_over = hand_over
        self._lock = threading.Lock()
        self._closed = False
        if address is not None:
            self.address = address

    def deliver(self, body: bytes, slot: str) -> bool:
        """Called by the node's I/O loop: take ``body``; False if closed."""
        return bool(self.mailbox.put(Delivery(body, slot)))

    def pending(self) -> bool:
        return bool(self.mailbox)

    def hand_over(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        kept = self._hand_over(self, deliveries)
        if kept < len(deliveries):
            LOG.warning(
                "ZeroMQ listener on %s closed with %d messages it had not returned and no "
                "other listener of them in this process: they are dropped",
                ", ".join(self.slots),
                len(deliveries) - kept,
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._unsubscribe(self)
        self.hand_over(self.mailbox.close())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.slots}>"


class ZmqListener(Subscription, base.Inbox):
    """A subscription of one driver to some addresses, served by the process's node."""

    mailbox: Mailbox

    def __init__(
        self,
        slots: Sequence[str],
        unsubscribe: Callable[[Any], None],
        hand_over: Callable[[Any, list[Delivery]], int],
        address: base.Address | None = None,
    ) -> None:
        super().__init__(slots, Mailbox(), unsubscribe, hand_over, address)

    def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        delivery = self.mailbox.get(timeout)
        if delivery is not None:
            delivery.listener = self
        return delivery
