"""The reply waiter: one inbox per transport, replies routed to callers by id.

It belongs to the transport (:meth:`rpcframe.transport.Transport._send` makes
calls through it), below the RPC clients that share it; it knows the driver
only through the inbox the transport opens for it.

Every call registers its ``_msg_id`` here before the request is sent, then
waits for the reply carrying that id. There is no reader thread: the waiting
callers take turns reading the inbox (leader/follower). One caller, the
leader, blocks in ``inbox.poll``; every reply it reads goes to the caller it
belongs to, and when the leader's own reply arrives (or its deadline passes)
it wakes one follower to take over. A lone caller therefore reads its own
reply straight from the transport, with no thread hand-off in between, and
many concurrent callers share one inbox.

Every wait has a deadline: the call's timeout, and the call-monitor
interval when the caller asked for heartbeats (a heartbeat from the server
pushes that one back). Replies for callers that stopped waiting are dropped
with a debug log line.

The state machine, per waiting caller (all under ``_lock``; ``_leading``
says whether some caller is the leader)::

    registered ──wait()──► has a reply queued? ──yes──► done (returns it)
                                │ no
                                ├── no leader: becomes the leader ──► reads one
                                │   message without the lock, routes it to its
                                │   slot (notifying that caller), then looks again
                                └── a leader exists: follower, waits on its own
                                    condition until notified or its deadline

    leaving (a reply, a timeout, close()): if no leader is left in place, it
    wakes one follower (``_hand_over``) to become the leader.

Only the leader reads the inbox; a follower is woken by the leader routing
its reply, by a leaving caller handing over, or by ``close()`` (all of them).

Watched ids: a reply nobody blocks on (an asynchronous call handle, a
stream, a server's control channel) is *watched* instead of waited for: a
:class:`Watcher` receives every message for its id through ``deliver`` in
the thread that read it, and ``expired`` once its ``deadline`` passes. While
any id is watched, a pump thread takes part in the scheme as one more
follower: it leads whenever no caller does, so that watched replies are read
even when no thread waits, and it checks the deadlines. It ends as soon as
nothing is watched; plain calls never start it::

    pump: idle ──watch()──► running ──no leader──► leads: reads one message
           ▲                  │  ▲                  (or until the next deadline),
           │                  │  └──────────────── routes it, expires what is due
           └─ nothing watched ┘  a caller leads: waits as a follower
:mod:`rpcframe.handoffs` marks the hand-off points for the stress test
(``tests/unit/test_stress.py``).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from rpcframe import exceptions, handoffs, wire
from rpcframe.drivers import base

__all__ = ["ReplyWaiter", "Watcher"]

LOG = logging.getLogger(__name__)


class _Slot:
    """One pending call: its replies, and the condition its caller waits on.

    The condition is made only when the caller has to wait behind a leader;
    a lone caller leads and never needs one.
    """

    __slots__ = ("cond", "replies", "waiting")

    def __init__(self) -> None:
        self.cond: threading.Condition | None = None
        self.replies: collections.deque[wire.Reply] = collections.deque()
        self.waiting = False


class Watcher(Protocol):
    """Receives the messages for one watched id (see :meth:`ReplyWaiter.watch`).

    Its methods are called from whichever thread read the inbox, one message
    at a time; ``expired`` and ``closed`` may come from another thread, so a
    watcher guards its own state. All of them must be quick: the inbox waits.
    """

    #: ``time.monotonic()`` after which :meth:`expired` is called (it may move).
    deadline: float

    def deliver(self, reply: wire.Reply) -> None: ...

    def expired(self) -> None: ...

    def closed(self) -> None: ...


#: Longest the pump blocks in one read while something is watched: a watch
#: added meanwhile with an earlier deadline expires at most this late.
_PUMP_READ_MAX = 0.25


class ReplyWaiter:
    """Routes replies from the transport's inbox to the calls waiting for them.

    Thread-safe. ``address`` opens the inbox on first use; ``close`` wakes
    every waiter, which then fails with TransportClosed.
    """

    def __init__(
        self,
        open_inbox: Callable[[], base.Inbox],
        allowed_remote_exmods: Iterable[str],
        passes_objects: bool = False,
    ) -> None:
        self._open_inbox = open_inbox
        self._passes_objects = passes_objects
        self.allowed_remote_exmods = list(allowed_remote_exmods)
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._inbox: base.Inbox | None = None
        self._leading = False
        self._closed = False
        self._watches: dict[str, Watcher] = {}
        self._next_check = float("inf")  # the earliest watched deadline, at most
        self._pump: _Slot | None = None  # the pump's follower slot while it runs

    @property
    def address(self) -> base.Address:
        """The inbox address callers put in ``_reply_q``."""
        inbox = self._inbox
        if inbox is None:
            with self._lock:
                if self._closed:
                    raise exceptions.TransportClosed("the transport was cleaned up")
                if self._inbox is None:
                    self._inbox = self._open_inbox()
                inbox = self._inbox
        return inbox.address

    def register(self, msg_id: str) -> None:
        """Start collecting replies for ``msg_id``; call before sending the request."""
        with self._lock:
            self._slots[msg_id] = _Slot()

    def unregister(self, msg_id: str) -> None:
        """Stop collecting replies for ``msg_id``; later ones are dropped."""
        with self._lock:
            self._slots.pop(msg_id, None)

    def watch(self, msg_id: str, watcher: Watcher) -> None:
        """Send every message for ``msg_id`` to ``watcher`` until :meth:`unwatch`.

        Starts the pump thread if it is not running. Raises TransportClosed
        after :meth:`close`.
        """
        with self._lock:
            if self._closed:
                raise exceptions.TransportClosed("the transport was cleaned up")
            self._watches[msg_id] = watcher
            self._next_check = min(self._next_check, watcher.deadline)
            if self._pump is None:
                self._pump = _Slot()
                self._pump.cond = threading.Condition(self._lock)
                thread = threading.Thread(
                    target=self._run_pump, name="rpcframe-replies", daemon=True
                )
                thread.start()
            elif self._pump.waiting and self._pump.cond is not None:
                self._pump.cond.notify()  # it may have to look at deadlines sooner

    def unwatch(self, msg_id: str) -> None:
        """Stop watching ``msg_id``; later messages for it are dropped."""
        with self._lock:
            self._watches.pop(msg_id, None)

    def _run_pump(self) -> None:
        """The pump: lead while no caller does, for as long as anything is watched."""
        lock = self._lock
        pump = self._pump
        assert pump is not None and pump.cond is not None
        lock.acquire()
        try:
            while self._watches and not self._closed:
                due = self._take_due()
                if due:
                    lock.release()
                    try:
                        for watcher in due:
                            _safely(watcher.expired)
                    finally:
                        lock.acquire()
                    continue
                left = min(self._next_check - time.monotonic(), _PUMP_READ_MAX)
                if self._leading:
                    pump.waiting = True
                    pump.cond.wait(max(left, 0.0))
                    pump.waiting = False
                    continue
                self._leading = True
                lock.release()
                try:
                    if handoffs.hook is not None:
                        handoffs.hook("replies.pump")
                    self._read_one(max(left, 0.0))
                except exceptions.MessagingException as exc:
                    LOG.warning("Reading replies failed: %s", exc)
                finally:
                    lock.acquire()
                    self._leading = False
                    self._hand_over()
        finally:
            self._pump = None
            lock.release()

    def _take_due(self) -> list[Watcher]:
        """Remove and return the watchers whose deadline passed. Lock held."""
        now = time.monotonic()
        if now < self._next_check:
            return []
        due = [msg_id for msg_id, w in self._watches.items() if w.deadline <= now]
        expired = [self._watches.pop(msg_id) for msg_id in due]
        self._next_check = min((w.deadline for w in self._watches.values()), default=float("inf"))
        return expired

    def wait(self, msg_id: str, timeout: float, monitor_timeout: float | None = None) -> wire.Reply:
        """Return the final reply for ``msg_id``.

        Raises MessagingTimeout when ``timeout`` seconds pass, or when
        ``monitor_timeout`` seconds pass without a heartbeat or reply.
        """
        now = time.monotonic()
        deadline = now + timeout
        monitor_deadline = now + monitor_timeout if monitor_timeout else None
        lock = self._lock
        slot = self._slots[msg_id]
        if handoffs.hook is not None:
            handoffs.hook("replies.wait")
        lock.acquire()
        try:
            while True:
                while slot.replies:
                    reply = slot.replies.popleft()
                    if not reply.is_heartbeat:
                        return reply
                    if monitor_timeout:
                        monitor_deadline = time.monotonic() + monitor_timeout
                now = time.monotonic()
                if now >= deadline:
                    raise exceptions.MessagingTimeout(
                        f"Timed out waiting for a reply to message ID {msg_id}", timeout=timeout
                    )
                if monitor_deadline is not None and now >= monitor_deadline:
                    raise exceptions.MessagingTimeout(
                        f"Timed out waiting for a reply to message ID {msg_id}: no call-monitor "
                        f"heartbeat in {monitor_timeout} s",
                        timeout=monitor_timeout,
                    )
                if self._closed:
                    raise exceptions.TransportClosed(
                        "the transport was cleaned up while a call was waiting"
                    )
                left = min(deadline, monitor_deadline or deadline) - now
                if self._leading:
                    if slot.cond is None:
                        slot.cond = threading.Condition(lock)
                    slot.waiting = True
                    slot.cond.wait(left)
                    slot.waiting = False
                    continue
                self._leading = True
                lock.release()
                try:
                    if handoffs.hook is not None:
                        handoffs.hook("replies.lead")
                    self._read_one(left)
                finally:
                    if handoffs.hook is not None:
                        handoffs.hook("replies.led")
                    lock.acquire()
                    self._leading = False
        finally:
            # Whoever leaves without a leader in place passes the inbox on.
            if not self._leading:
                self._hand_over()
            lock.release()

    def _hand_over(self) -> None:
        """Wake one waiting follower (a caller first, else the pump) to lead. Lock held."""
        for other in self._slots.values():
            if other.waiting and other.cond is not None:
                other.cond.notify()
                return
        pump = self._pump
        if pump is not None and pump.waiting and pump.cond is not None:
            pump.cond.notify()

    def _read_one(self, timeout: float) -> None:
        """Read at most one message from the inbox and route it. Lock not held."""
        inbox = self._inbox
        if inbox is None:
            raise exceptions.TransportClosed("the reply inbox is not open")
        incoming = inbox.poll(timeout)
        if incoming is None:
            return
        incoming.ack()
        try:
            reply = wire.parse_reply(incoming.body)
        except exceptions.MalformedMessage as exc:
            LOG.warning("Dropping malformed reply: %s", exc.reason)
            return
        if self._passes_objects:
            reply.attachments = getattr(incoming, "attachments", None)
        if handoffs.hook is not None:
            handoffs.hook("replies.route")
        with self._lock:
            slot = self._slots.get(reply.msg_id)
            if slot is not None:
                slot.replies.append(reply)
                if slot.waiting and slot.cond is not None:
                    slot.cond.notify()
                return
            watcher = self._watches.get(reply.msg_id)
        if watcher is None:
            LOG.debug("Dropping reply to message %s: no caller waits for it", reply.msg_id)
            return
        # Still leading: the watcher gets its messages one at a time, in order.
        _safely(watcher.deliver, reply)

    def close(self) -> None:
        """Close the inbox and wake every waiting caller. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            inbox, self._inbox = self._inbox, None
            for slot in self._slots.values():
                if slot.cond is not None:
                    slot.cond.notify_all()
            watchers = list(self._watches.values())
            self._watches.clear()
            if self._pump is not None and self._pump.cond is not None:
                self._pump.cond.notify_all()
        for watcher in watchers:
            _safely(watcher.closed)
        if inbox is not None:
            inbox.close()


def _safely(fn: Callable[..., None], *args: object) -> None:
    """Call a watcher: its failure is logged, never the inbox's problem."""
    try:
        fn(*args)
    except Exception:
        LOG.exception("A reply watcher failed")
