"""The thread that keeps a link's connection alive while nobody uses it.

Every :class:`~rpcframe.drivers.amqp.link.Link` that has connected once has
a keeper thread. Each tick (half the heartbeat interval; every few seconds
without heartbeats) it calls :meth:`Link.beat
<rpcframe.drivers.amqp.link.Link.beat>`, which reads what arrived while no
other thread read the socket and sends a heartbeat when one is due; for a
link that carries consumers it also reconnects as soon as the connection is
lost, so that the queues and consumers are restored before anyone polls.
A broken connection nudges it to act at once.

In an eventlet-patched process the keeper is a green thread; a native
:class:`~rpcframe.drivers.amqp.pulse.Pulse` thread then writes the
heartbeats, which a hub blocked by an endpoint would otherwise starve.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from rpcframe import exceptions, green
from rpcframe.drivers.amqp import pulse
from rpcframe.drivers.amqp.connection import LinkSettings

__all__ = ["Keeper"]

LOG = logging.getLogger(__name__)

#: How often a link without AMQP heartbeats still checks on its connection.
IDLE_TICK = 5.0


class Kept(Protocol):
    """What a keeper asks of its link (:class:`~rpcframe.drivers.amqp.link.Link`)."""

    name: str
    settings: LinkSettings
    keep_connected: bool

    @property
    def connected(self) -> bool: ...

    def ensure(self, deadline: float | None, retry: int | None = None) -> int: ...

    def beat(self) -> None: ...

    def guard(self) -> pulse.Guard | None: ...


class Keeper:
    """The keeper thread of one link (and its pulse thread in patched processes).

    ``stop`` is the link's event that is set when the link closes.
    """

    def __init__(self, link: Kept, stop: threading.Event) -> None:
        self._link = link
        self._stop = stop
        self._nudge = threading.Event()
        self._thread: threading.Thread | None = None
        self._pulse: pulse.Pulse | None = None

    def start(self) -> None:
        """Start the threads, once; later calls do nothing."""
        if self._thread is not None:
            return
        link = self._link
        self._thread = threading.Thread(target=self._run, name=f"{link.name}-keeper", daemon=True)
        self._thread.start()
        s = link.settings
        if s.heartbeat and green.patched():
            # At least two heartbeats per heartbeat timeout, as RabbitMQ
            # counts the connection dead after two missed ones.
            interval = min(s.heartbeat / max(s.heartbeat_rate, 1), s.heartbeat / 2)
            self._pulse = pulse.Pulse(f"{link.name}-pulse", link.guard, interval)
            self._pulse.start()

    def nudge(self) -> None:
        """Act now rather than at the next tick (the connection broke, or the link closes)."""
        self._nudge.set()

    def _run(self) -> None:
        link = self._link
        s = link.settings
        tick = s.heartbeat / max(s.heartbeat_rate, 1) / 2.0 if s.heartbeat else IDLE_TICK
        while not self._stop.is_set():
            self._nudge.wait(tick)
            self._nudge.clear()
            if self._stop.is_set():
                return
            try:
                if not link.connected:
                    if link.keep_connected:
                        link.ensure(None)
                    continue
                link.beat()
            except exceptions.AuthenticationError as exc:
                LOG.error("%s: %s; not reconnecting", link.name, exc)
                return
            except exceptions.MessagingException as exc:
                LOG.debug("%s: reconnect failed: %s", link.name, exc)
            except Exception:  # the keeper outlives any one failure
                # Nobody else would reconnect a link that carries consumers.
                LOG.exception("%s: unexpected error keeping the connection", link.name)

    def stop(self, timeout: float) -> None:
        """Stop and join the threads (the link's stop event is set)."""
        self._nudge.set()
        if self._pulse is not None:
            self._pulse.stop(timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
