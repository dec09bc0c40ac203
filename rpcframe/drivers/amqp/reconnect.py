"""When and where a link connects next: host rotation and backoff.

Reconnection follows oslo.messaging's options: attempts go round the hosts
of the URL (or shuffle them); the first attempt after a failure is
immediate, the next waits ``rabbit_retry_interval`` seconds, and each one
after that ``rabbit_retry_backoff`` more, up to ``rabbit_interval_max``; each
wait is scaled by a random factor in [0.8, 1] plus up to
``kombu_reconnect_splay`` seconds, so that a fleet does not reconnect in
lockstep. A link may also put the next attempt off (a consumer the broker
cancelled waits ``kombu_reconnect_delay``).

A :class:`Schedule` only computes; the link waits and connects. It is used
under the link's connect lock, one thread at a time.
"""

from __future__ import annotations

import random
import time

from rpcframe.drivers.amqp.settings import Host, LinkSettings

__all__ = ["Schedule"]


class Schedule:
    """The attempts of one link: next host, next start time, the last failure."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings
        self.failures = 0
        self.error: BaseException | None = None
        self._not_before = 0.0
        hosts = settings.hosts
        self._turn = random.randrange(len(hosts)) if settings.shuffle else 0

    def next_host(self) -> Host:
        """The host of the next attempt (round the URL's hosts, or at random)."""
        hosts = self.settings.hosts
        host = hosts[self._turn % len(hosts)]
        self._turn = random.randrange(len(hosts)) if self.settings.shuffle else self._turn + 1
        return host

    def start_at(self) -> float:
        """The monotonic time at which the next attempt may start."""
        delay = 0.0
        if self.failures:
            s = self.settings
            delay = min(s.interval_max, s.retry_interval + (self.failures - 1) * s.retry_backoff)
            delay = delay * random.uniform(0.8, 1.0) + random.uniform(0.0, s.splay)
        return max(time.monotonic() + delay, self._not_before)

    def failed(self, error: BaseException) -> None:
        """An attempt failed with ``error``."""
        self.failures += 1
        self.error = error

    def succeeded(self) -> None:
        self.failures = 0
        self.error = None

    def lost(self, error: BaseException, delay: float = 0.0) -> None:
        """The connection broke with ``error``; no attempt before ``delay`` seconds."""
        self.error = error
        self._not_before = time.monotonic() + delay

    def why(self) -> str:
        """Why the link is not connected, without credentials."""
        # Imported here: the asyncio driver uses schedules without py-amqp.
        from rpcframe.drivers.amqp.errors import describe

        return describe(self.error) if self.error is not None else "not connected"
