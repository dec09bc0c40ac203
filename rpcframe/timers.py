"""Timers: what a server must do later, without holding a worker.

Servers use them for the call-monitor heartbeats of running calls, and for
retrying a reply whose caller's inbox is missing for a moment (after a broker
restart, say). Two named threads per :class:`Timers`, each started on first
use and joined on ``close()``:

* the **timer thread** sleeps on a condition until the next timer is due and
  runs its callback. Callbacks are short and never do I/O: one that blocked
  would hold up every later timer.
* the **I/O thread** runs the jobs of :meth:`Timers.schedule_io`, one after
  the other: the timer thread hands a due job over and goes back to its heap
  at once. Sends run there, so a send that waits on the broker delays other
  sends, never the clock. Jobs bound their own waits.

A timer's life, under the condition's lock::

    scheduled ──(due)──► running (timer thread, or handed to the I/O thread) ──► done
        └──(cancel)──► cancelled: left in the heap, counted; the heap is
                       rebuilt without them once they are more than half of it

so a server that starts and cancels many long timers (calls with a long
call-monitor timeout that end quickly) keeps a heap the size of its live
timers, not of every timer it ever cancelled.

``native=True`` makes the threads (and the condition) the OS's own in an
eventlet-patched process, where the default ones are green and an endpoint
that blocks the hub would stop them. Their callbacks and jobs then run beside
the hub: they must not touch green locks or sockets, nor log (see
:mod:`rpcframe.green`).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rpcframe import green

__all__ = ["Timer", "Timers"]

LOG = logging.getLogger(__name__)

#: Below this many cancelled entries the heap is never rebuilt: popping them
#: when they come due is cheaper.
_COMPACT_MIN = 64


class Timer:
    """A scheduled callback; ``cancel()`` stops it if it has not started yet."""

    __slots__ = ("_owner", "callback", "cancelled", "io", "in_heap")

    def __init__(
        self, callback: Callable[[], None], owner: Timers | None = None, io: bool = False
    ) -> None:
        self.callback = callback
        self.cancelled = False
        self.io = io  # runs on the I/O thread
        self.in_heap = False  # in its owner's heap (under the owner's lock)
        self._owner = owner

    def cancel(self) -> None:
        """Stop the timer. Safe from any thread, and more than once."""
        owner = self._owner
        if owner is None:
            self.cancelled = True
        else:
            owner._cancel(self)


class Timers:
    """Runs callbacks at their due time on one named thread, and I/O jobs on another."""

    def __init__(self, name: str, native: bool = False) -> None:
        self._name = name
        self._threading = green.native_threading() if native else threading
        lock = self._threading.RLock()
        self._cond = self._threading.Condition(lock)  # the heap, and all the state below
        self._due: list[tuple[float, int, Timer]] = []
        self._cancelled = 0  # cancelled entries still in the heap
        self._seq = itertools.count()
        self._thread: Any = None
        self._io_cond = self._threading.Condition(lock)  # the I/O queue has jobs
        self._io_jobs: collections.deque[Timer] = collections.deque()
        self._io_thread: Any = None
        self._closed = False

    def new_lock(self) -> Any:
        """A lock of the same kind as these timers' threads (native for native timers)."""
        return self._threading.Lock()

    @property
    def queued(self) -> int:
        """Entries the timers hold: pending timers, cancelled ones not yet dropped, I/O jobs."""
        with self._cond:
            return len(self._due) + len(self._io_jobs)

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` on the timer thread in ``delay`` seconds; return its Timer.

        ``callback`` must be short and must not do I/O (see :meth:`schedule_io`).
        After ``close()`` (until ``reopen()``) nothing is scheduled: the
        returned Timer is already cancelled.
        """
        return self._push(delay, Timer(callback, self))

    def schedule_io(self, delay: float, job: Callable[[], None]) -> Timer:
        """Run ``job`` on the I/O thread once ``delay`` seconds have passed.

        For sends and anything else that may wait: the timer thread only
        hands it over. Jobs run one at a time, in due order.
        """
        return self._push(delay, Timer(job, self, io=True))

    def _push(self, delay: float, timer: Timer) -> Timer:
        with self._cond:
            if self._closed:
                timer.cancelled = True
                return timer
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), timer))
            timer.in_heap = True
            if self._thread is None:
                self._thread = self._start(self._run, self._name)
            self._cond.notify()
        return timer

    def _start(self, target: Callable[[], None], name: str) -> Any:
        thread = self._threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _cancel(self, timer: Timer) -> None:
        with self._cond:
            if timer.cancelled:
                return
            timer.cancelled = True
            if not timer.in_heap:
                return  # running, or in the I/O queue (which skips it)
            self._cancelled += 1
            if self._cancelled >= _COMPACT_MIN and self._cancelled * 2 > len(self._due):
                self._due = [entry for entry in self._due if not entry[2].cancelled]
                heapq.heapify(self._due)
                self._cancelled = 0

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, timer = self._due[0]
                if timer.cancelled:
                    heapq.heappop(self._due)
                    timer.in_heap = False
                    self._cancelled -= 1
                    continue
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._due)
                timer.in_heap = False
                if timer.io:
                    self._hand_over(timer)
                    continue
                self._cond.release()
                try:
                    timer.callback()
                except Exception:
                    LOG.exception("%s: a timer callback failed", self._name)
                finally:
                    self._cond.acquire()

    # -- the I/O thread ----------------------------------------------------------

    def _hand_over(self, timer: Timer) -> None:
        # On the timer thread, lock held: queue the job and return to the heap.
        self._io_jobs.append(timer)
        if self._io_thread is None:
            self._io_thread = self._start(self._run_io, f"{self._name}-io")
        self._io_cond.notify()

    def _run_io(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._io_jobs:
                    self._io_cond.wait()
                    continue
                timer = self._io_jobs.popleft()
                if timer.cancelled:
                    continue
                self._cond.release()
                try:
                    timer.callback()
                except Exception:
                    LOG.exception("%s: a timed job failed", self._name)
                finally:
                    self._cond.acquire()

    # -- life cycle --------------------------------------------------------------

    def reopen(self) -> None:
        """Accept timers again after ``close()``."""
        with self._cond:
            self._closed = False

    def close(self) -> None:
        """Drop every pending timer and job, and join both threads. Idempotent."""
        with self._cond:
            self._closed = True
            for _, _, timer in self._due:
                timer.in_heap = False
            self._due.clear()
            self._io_jobs.clear()
            self._cancelled = 0
            threads = [self._thread, self._io_thread]
            self._thread = self._io_thread = None
            self._cond.notify_all()
            self._io_cond.notify_all()
        current = self._threading.current_thread()
        for thread in threads:
            if thread is not None and thread is not current:
                thread.join(5)
                if thread.is_alive():
                    LOG.warning("%s: a timer callback is still running after close()", self._name)
