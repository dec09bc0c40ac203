"""Whose turn it is to receive: the worker pool of a MessageHandlingServer.

A server's workers take turns receiving from its listener (leader/follower);
:class:`Turns` keeps the turn, counts the workers and the busy ones, grows the
pool with the concurrency the server sees and tells the listener how much it
may take (its window). The state machine is drawn in the class docstring;
:mod:`rpcframe.server` runs the workers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rpcframe import handoffs
from rpcframe.drivers import base
from rpcframe.executors import Executor

__all__ = ["Turns"]


#: Seconds a reply takes to finish (its send and the broker's confirm)
#: beyond which it waited for a long round trip to the broker, not for this
#: process: the busiest local server's confirms rarely take that long.
_SLOW_FINISH = 0.01
#: Replies in a row that must have taken longer than that before finishing
#: workers no longer count as about to be idle.
_SLOW_FINISHES = 3


class Turns:
    """Whose turn it is to receive, and how many workers there are and are busy.

    Where the driver's listeners may be polled by many threads at once
    (``Capabilities.concurrent_poll``) every idle worker waits in ``poll``
    and the transport wakes one per message: ``take()`` returns at once.

    Otherwise one worker at a time, the *holder*, has the turn to receive.
    It keeps the turn while it handles what it received, so that a server
    serving short requests runs them all on one thread without a single
    thread switch. One idle worker, the *watcher*, keeps an eye on it: once
    the holder has been handling one message for ``handover_delay`` seconds,
    the watcher takes the turn over and receives the next message; the
    former holder waits in line when it is done. A slow request thus holds
    up the next one by about ``handover_delay`` at most. The watcher checks
    on a timer only while messages keep arriving; on a quiet server it sleeps
    until the holder, starting on a message, wakes it. The other idle
    workers wait in line without a timer. A delay of 0 passes the turn on as
    each message arrives.

    The listener's window (:meth:`~rpcframe.drivers.base.Listener.window`)
    follows the free workers: the pool's size less the busy ones, times
    ``unit`` messages each, so that a server whose workers are all busy
    takes nothing more from the transport.

    ``handling()`` starts another worker when none is idle and the pool is
    not full, so the number of workers follows the concurrency the server
    actually sees. A worker that is only finishing (its endpoint returned,
    its reply waits for the broker's confirm) counts as about to be idle
    unless the last :data:`_SLOW_FINISHES` replies all took longer than
    :data:`_SLOW_FINISH` to finish: on a link with a long round trip to
    the broker every confirm does, and the next message gets a worker of
    its own instead of waiting for one. Near the broker a confirm takes
    well under a millisecond, a few on a busy server, and the pool stays as
    small as the concurrency (a larger one only costs thread switches).

    The state machine (turn-taking mode; all under ``_lock``)::

        worker:  in line ──(no watcher)──► watcher ──(holder is None, or busy
                    ▲                         │      for handover_delay)──► holder
                    │                         └──(stopping)──► gone
                    │
        holder:  receiving ──(message)──► handling ──(handled)──► receiving
                    │                        │
                    │                        └──(watcher takes over, or
                    │                            pass_if_pending)──► plain worker
                    └──(stopping, or listener closed)──► gone
        plain worker: handling ──(handled)──► in line

    Who moves it: a worker moves only itself, except that ``handling()`` and
    ``_pass_turn()`` wake the watcher (``_watch``) and ``_pass_turn()`` with no
    watcher wakes one in line (``_line``); ``stop()`` wakes everyone and closes
    the listener so that the holder's ``poll`` returns. The invariants: at
    most one holder; at most one watcher; the watcher is never the holder;
    ``_busy <= _workers <= size``. :mod:`rpcframe.handoffs` marks the hand-off
    points for the stress test (``tests/unit/test_stress.py``).
    """

    def __init__(
        self,
        executor: Executor,
        size: int,
        listener: base.Listener,
        concurrent_poll: bool,
        handover_delay: float,
        unit: int | None = 1,
    ) -> None:
        self._executor = executor
        self._unit = unit
        self._size = size
        self._listener: base.Listener | None = listener
        self._shared = concurrent_poll
        self._delay = handover_delay
        self._lock = threading.Lock()
        self._watch = threading.Condition(self._lock)  # the watcher waits here
        self._line = threading.Condition(self._lock)  # the other idle workers here
        self._holder: int | None = None
        self._busy_since: float | None = None  # the holder handles a message since
        self._received = 0
        self._watcher: int | None = None
        self._watcher_sleeps = False
        self._workers = 0
        #: What a new worker runs (set by the server before start()).
        self.work: Any = None
        self._busy = 0
        self._finishing = 0
        # How many replies in a row took longer than _SLOW_FINISH to finish.
        self._slow_finishes = 0
        self.stopping = threading.Event()

    # -- a worker's steps -----------------------------------------------------------------

    def take(self) -> base.Listener | None:
        """Wait for this worker's turn to receive; the listener (None once stopping)."""
        if handoffs.hook is not None:
            handoffs.hook("turns.take")
        if not self._shared:
            with self._lock:
                self._wait_for_turn(threading.get_ident())
        return None if self.stopping.is_set() else self._listener

    def handling(self, work: Any) -> None:
        """This worker received a message and starts handling it."""
        me = threading.get_ident()
        if handoffs.hook is not None:
            handoffs.hook("turns.handling")
        with self._lock:
            self._busy += 1
            if self._holder == me:
                self._received += 1
                if self._delay:
                    self._busy_since = time.monotonic()
                    if self._watcher_sleeps:
                        self._watch.notify()
                else:
                    self._pass_turn()
            self._offer_window()
            spawn = not (
                self._workers > self._busy
                or (self._finishing and self._slow_finishes < _SLOW_FINISHES)
                or self._workers >= self._size
                or self.stopping.is_set()
            )
            if spawn:
                self._workers += 1  # counted from now, so only one is started
        if handoffs.hook is not None:
            handoffs.hook("turns.spawn")
        if spawn:
            self._spawn(work)

    def handled(self) -> None:
        """This worker is done with its message (it may still hold the turn)."""
        if handoffs.hook is not None:
            handoffs.hook("turns.handled")
        with self._lock:
            self._busy -= 1
            if self._holder == threading.get_ident():
                self._busy_since = None
            self._offer_window()

    def leave(self) -> None:
        """This worker ends; its turn, if it holds it, goes to another."""
        if handoffs.hook is not None:
            handoffs.hook("turns.leave")
        with self._lock:
            self._workers -= 1
            if self._holder == threading.get_ident():
                self._pass_turn()

    def finishing(self) -> float:
        """Count this worker as finishing: its message is handled but for
        sending the result. Returns when, for :meth:`finished`."""
        with self._lock:
            self._finishing += 1
        return time.monotonic()

    def finished(self, since: float) -> None:
        """This worker, finishing ``since`` then, is done sending."""
        slow = time.monotonic() - since > _SLOW_FINISH
        with self._lock:
            self._finishing -= 1
            self._slow_finishes = min(self._slow_finishes + 1, _SLOW_FINISHES) if slow else 0

    def pass_if_pending(self) -> None:
        """Pass the turn on now if this worker holds it and a message is waiting.

        Called when only sending the result is left (which waits for the
        broker): the next message need not wait for that.
        """
        listener = self._listener
        if self._shared or self._holder != threading.get_ident() or listener is None:
            return
        if listener.pending():
            if handoffs.hook is not None:
                handoffs.hook("turns.pass_if_pending")
            with self._lock:
                if self._holder == threading.get_ident():
                    self._pass_turn()

    # -- the turn (lock held) ------------------------------------------------------------

    def _wait_for_turn(self, me: int) -> None:
        seen = self._received
        while not self.stopping.is_set():
            if self._holder is None or self._holder == me:
                break
            if self._watcher is None:
                self._watcher = me
            if self._watcher != me:
                self._line.wait()
                continue
            since = self._busy_since
            if since is not None:
                left = since + self._delay - time.monotonic()
                if left <= 0:
                    break  # the holder is busy for a while: take its turn
                self._watch.wait(left)
            elif self._delay and self._received != seen:
                seen = self._received  # messages keep coming: look again soon
                self._watch.wait(self._delay)
            else:
                self._watcher_sleeps = True
                self._watch.wait()
                self._watcher_sleeps = False
        else:
            if self._watcher == me:
                self._watcher = None
            return
        self._holder = me
        self._busy_since = None
        if self._watcher == me:
            self._watcher = None
            self._line.notify()  # one in line becomes the watcher

    def _pass_turn(self) -> None:
        self._holder = None
        self._busy_since = None
        if self._watcher is not None:
            self._watch.notify()
        else:
            self._line.notify()

    def _offer_window(self) -> None:
        """Tell the listener what the free workers can take. Lock held, so
        that the listener learns the counts in the order they change."""
        listener = self._listener
        if listener is not None:
            unit = self._unit
            listener.window(None if unit is None else (self._size - self._busy) * unit)

    # -- the pool --------------------------------------------------------------------------

    def start(self, work: Any) -> None:
        """Offer the whole pool's window; start the first worker."""
        with self._lock:
            self._workers += 1
            self._offer_window()
        self._spawn(work)

    def _spawn(self, work: Any) -> None:
        try:
            self._executor.spawn(work)
        except BaseException:
            with self._lock:
                self._workers -= 1
            raise

    def replace(self, listener: base.Listener | None) -> None:
        """Use ``listener`` from now on (after a failure); None stops receiving."""
        with self._lock:
            self._listener = listener
            self._offer_window()
        if listener is None:
            self.stop()
        elif self.stopping.is_set():  # stop() ran while the new listener was being made
            listener.close()

    def stop(self) -> None:
        """Stop receiving: wake the workers that wait on the transport. Idempotent."""
        self.stopping.set()
        if handoffs.hook is not None:
            handoffs.hook("turns.stop")
        with self._lock:
            self._watch.notify_all()
            self._line.notify_all()
        listener = self._listener
        if listener is not None:
            listener.close()
