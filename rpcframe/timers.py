"""Timers: one thread that runs small callbacks when they are due.

Servers use it for what must happen later without holding a worker: the
call-monitor heartbeats of running calls, and retrying a reply whose
caller's inbox is missing for a moment (after a broker restart, say). The
thread starts with the first timer, sleeps on a condition until the next one
is due, and is joined on ``close()``. Callbacks must be short and must not
raise; one that does is logged and dropped.

``native=True`` makes the thread (and its condition) the OS's own in an
eventlet-patched process, where the default ones are green and an endpoint
that blocks the hub would stop them. Its callbacks then run beside the hub:
they must not touch green locks or sockets, nor log (see :mod:`rpcframe.green`).
"""

from __future__ import annotations

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


class Timer:
    """A scheduled callback; ``cancel()`` stops it if it has not run yet."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Timers:
    """Runs callbacks at their due time, on one named thread."""

    def __init__(self, name: str, native: bool = False) -> None:
        self._name = name
        self._threading = green.native_threading() if native else threading
        self._cond = self._threading.Condition()
        self._due: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._thread: Any = None
        self._closed = False

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        """Run ``callback`` in ``delay`` seconds; return its Timer.

        After ``close()`` (until ``reopen()``) nothing is scheduled: the
        returned Timer is already cancelled.
        """
        timer = Timer(callback)
        with self._cond:
            if self._closed:
                timer.cancel()
                return timer
            heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), timer))
            if self._thread is None:
                self._thread = self._threading.Thread(
                    target=self._run, name=self._name, daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return timer

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, timer = self._due[0]
                if timer.cancelled:
                    heapq.heappop(self._due)
                    continue
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._due)
                self._cond.release()
                try:
                    timer.callback()
                except Exception:
                    LOG.exception("%s: a timer callback failed", self._name)
                finally:
                    self._cond.acquire()

    def reopen(self) -> None:
        """Accept timers again after ``close()``."""
        with self._cond:
            self._closed = False

    def close(self) -> None:
        """Drop every pending timer and join the thread. Idempotent."""
        with self._cond:
            self._closed = True
            self._due.clear()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not self._threading.current_thread():
            thread.join(5)
            if thread.is_alive():
                LOG.warning("%s: a timer callback is still running after close()", self._name)
