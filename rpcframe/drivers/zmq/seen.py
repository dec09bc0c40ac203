"""The message ids a node received lately, to answer a sender's copy as the original.

A sender that heard no acknowledgement sends the same message id again,
but only until its send's deadline (by default ``rpc_zmq_connect_timeout +
rpc_ack_timeout_base * (rpc_retry_attempts + 1)`` seconds). The receiver
remembers each id, with the answer it gave, for that long and no longer,
in two generations of ids: the current one, and the one before, dropped
whole when the current one is older than the window. Memory is bounded
by count too (``limit`` ids at most): at a rate above ``limit / window``
ids a second a generation is retired early, and a copy arriving later
than ``limit / 2`` messages after its original is taken as new. Call
requests are never sent twice (calls run at most once), so only casts,
notifications and replies rely on this.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["SeenIds"]


class SeenIds:
    """Recently received ids and their answers; bounded in time and count. One thread."""

    def __init__(
        self, window: float, limit: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._half = max(1, limit // 2)
        self._clock = clock
        self._current: dict[str, str] = {}
        self._previous: dict[str, str] = {}
        self._since = clock()

    def get(self, msg_id: str) -> str | None:
        """The answer given to ``msg_id``, if it came within the window."""
        status = self._current.get(msg_id)
        if status is None:
            status = self._previous.get(msg_id)
        return status

    def add(self, msg_id: str, status: str) -> None:
        now = self._clock()
        if len(self._current) >= self._half or now - self._since >= self._window:
            # The previous generation is older than the window (or over the count).
            self._previous = self._current if now - self._since < 2 * self._window else {}
            self._current = {}
            self._since = now
        self._current[msg_id] = status

    def __len__(self) -> int:
        return len(self._current) + len(self._previous)
