"""Callbacks run a fixed delay after they were scheduled, on one loop timer per delay.

A server schedules one callback per request (announce the call if it runs
``announce_after`` seconds) and cancels nearly all of them a moment later,
when the call ends. ``loop.call_later`` would push a timer onto the loop's
heap per request and leave the cancelled ones there; here the callbacks of
one delay wait in a queue in the order they are due, and only the head of
each queue has a loop timer. Cancelling is marking: a cancelled entry is
dropped when it reaches the head. Not thread-safe: the loop's thread only.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

__all__ = ["Later", "Scheduled"]

LOG = logging.getLogger(__name__)


class Scheduled:
    """One scheduled callback; :meth:`cancel` it (a no-op once it ran)."""

    __slots__ = ("due", "callback")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class Later:
    """The callbacks scheduled on one event loop; see the module documentation."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queues: dict[float, collections.deque[Scheduled]] = {}
        self._timers: dict[float, asyncio.TimerHandle] = {}

    def call_later(self, delay: float, callback: Callable[[], None]) -> Scheduled:
        """Run ``callback()`` on the loop ``delay`` seconds from now, unless cancelled."""
        entry = Scheduled(self._loop.time() + delay, callback)
        queue = self._queues.get(delay)
        if queue is None:
            queue = self._queues[delay] = collections.deque()
        queue.append(entry)
        if delay not in self._timers:
            self._timers[delay] = self._loop.call_at(entry.due, self._due, delay)
        return entry

    def _due(self, delay: float) -> None:
        queue = self._queues[delay]
        now = self._loop.time()
        while queue and (queue[0].due <= now or queue[0].callback is None):
            entry = queue.popleft()
            callback, entry.callback = entry.callback, None
            if callback is not None:
                try:
                    callback()
                except Exception:  # one callback must not stop the others
                    LOG.exception("a scheduled callback failed")
        if queue:
            self._timers[delay] = self._loop.call_at(queue[0].due, self._due, delay)
        else:
            del self._timers[delay], self._queues[delay]

    def close(self) -> None:
        """Cancel everything scheduled."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._queues.clear()
