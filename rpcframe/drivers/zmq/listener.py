"""Listeners and inboxes of the ZeroMQ driver: a mailbox per listener, filled by the node.

The node's I/O loop puts each message it accepted for a listener into that
listener's :class:`Mailbox` and only then acknowledges it to the sender: a
message is the listener's from then on. ``poll`` takes from the mailbox
(several threads may poll at once: the driver declares ``concurrent_poll``);
an empty poll reads the node's sockets itself while no other thread does
(the reading role of :mod:`.node`), else waits on the mailbox.
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

    __slots__ = ("listener", "slot", "reply_ref")

    def __init__(self, body: bytes, slot: str, reply_ref: str | None = None) -> None:
        super().__init__(body)
        self.slot = slot  # the local subscription it came through
        self.listener: Subscription | None = None
        self.reply_ref = reply_ref  # a call request's id: its last reply answers it

    def _ack(self) -> None:
        # The sender had its acknowledgement when the message reached the
        # mailbox; handling it is the listener's business.
        pass

    def _requeue(self) -> None:
        again = Delivery(self.body, self.slot, self.reply_ref)
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
        #: Set while a poller of this mailbox reads the node's sockets itself
        #: (:meth:`.node.Node.read_for`): that thread's ident, and what wakes
        #: it after another thread's put or close (it waits on the sockets,
        #: not on the mailbox). Its own puts wake nobody: it looks next.
        self.reader: int | None = None
        self.nudge: Callable[[], None] | None = None
        self._waiters = 0  # pollers blocked in get
        self._turn = False  # offered the reading role (offer_turn)

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
            if self.reader == threading.get_ident():
                return True  # the reader takes it, and wakes a poller for the rest
            self._cond.notify()
        nudge = self.nudge
        if nudge is not None:
            nudge()
        return True

    def take(self) -> Delivery | None:
        """The first delivery, or None at once; a blocked poller is woken for the next."""
        with self._cond:
            return self._pop() if self._items else None

    def _pop(self) -> Delivery:
        # The first delivery; a blocked poller is woken for the next. The lock is held.
        item = self._items.popleft()
        if self._items and self._waiters:
            self._cond.notify()
        return item

    def offer_turn(self) -> bool:
        """Wake a blocked poller to read the node's sockets itself; False if none is blocked."""
        with self._cond:
            if not self._waiters or self.closed:
                return False
            self._turn = True
            self._cond.notify()
            return True

    def ready(self) -> bool:
        """Whether a poll would return now: a delivery is here, or the mailbox is closed."""
        return self.closed or bool(self._items)

    def get(self, timeout: float | None) -> Delivery | None:
        """The first delivery, waiting up to ``timeout``; None when closed, timed out or
        offered the reading role (:meth:`offer_turn`)."""
        with self._cond:
            if not self._items and not self.closed and not self._turn:
                self._waiters += 1
                if handoffs.hook is not None:
                    handoffs.hook("zmq.blocked")  # a poller about to wait; the lock is held
                try:
                    if timeout is None:
                        while not self._items and not self.closed and not self._turn:
                            self._cond.wait()
                    else:
                        deadline = time.monotonic() + timeout
                        while not self._items and not self.closed and not self._turn:
                            left = deadline - time.monotonic()
                            if left <= 0 or not self._cond.wait(left):
                                break
                finally:
                    self._waiters -= 1
            self._turn = False
            if self.closed or not self._items:
                return None
            return self._pop()

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
        nudge = self.nudge
        if nudge is not None:
            nudge()
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

    def deliver(self, body: bytes, slot: str, reply_ref: str | None = None) -> bool:
        """Called by the node's I/O loop: take ``body``; False if closed."""
        return bool(self.mailbox.put(Delivery(body, slot, reply_ref)))

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
    """A subscription of one driver to some addresses, served by the process's node.

    :param read: the node's :meth:`~.node.Node.read_for`: an empty poll
        reads the node's sockets itself while no other thread does, instead
        of waiting for the I/O loop to hand it what it read (None: always
        wait on the mailbox).
    """

    mailbox: Mailbox

    def __init__(
        self,
        slots: Sequence[str],
        unsubscribe: Callable[[Any], None],
        hand_over: Callable[[Any, list[Delivery]], int],
        address: base.Address | None = None,
        read: Callable[[Mailbox, float | None], bool] | None = None,
    ) -> None:
        super().__init__(slots, Mailbox(), unsubscribe, hand_over, address)
        self._read_node = read

    def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        mailbox = self.mailbox
        read = self._read_node
        delivery = mailbox.take()
        if delivery is None and read is not None and timeout != 0:
            deadline = None if timeout is None else time.monotonic() + timeout
            # Another poller of the mailbox may take what this one read:
            # then read again, until the deadline.
            while delivery is None and not mailbox.closed:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                if read(mailbox, deadline):
                    delivery = mailbox.take()
                else:  # another thread reads: it delivers here, or hands this one the role
                    delivery = mailbox.get(left)
        elif delivery is None:
            delivery = mailbox.get(timeout)
        if delivery is not None:
            delivery.listener = self
        return delivery
