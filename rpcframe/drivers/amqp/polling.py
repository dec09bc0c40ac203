"""Waiting until a connection's socket, or a link's wake-up socket, is readable.

A link's reader waits on two sockets at once: the broker connection and the
link's wake-up socket, which other threads write to when they need the reader
to look at its state again. How it waits depends on the process, and is
chosen once per process (:func:`rpcframe.green.patched`):

* threaded: a native ``poll()``, registered once per connection;
* eventlet-patched (``select.poll`` is gone, and a native wait would stop
  every green thread): first a native ``poll()`` that does not wait, which
  answers at once when bytes are already there (the common case on a busy
  connection, and no hub switch at all), and only then a wait through the
  hub, during which the other green threads run.

:func:`readable` answers without waiting, in both kinds of process, with
the native ``poll()``.
"""

from __future__ import annotations

import functools
import select
import types
from typing import Any

from rpcframe import green

__all__ = ["GreenPoller", "Poller", "native_select", "poller", "readable"]


def native_select() -> types.ModuleType:
    """``select`` as the OS has it (eventlet removes ``poll`` from the patched one)."""
    if not green.patched():
        return select
    import eventlet.patcher  # already imported: the process is patched

    module: types.ModuleType = eventlet.patcher.original("select")
    return module


class Poller:
    """Waits for a connection socket (``sock_fd``) or a wake-up socket (``wake_fd``)."""

    def __init__(self, sock_fd: int, wake_fd: int) -> None:
        native = native_select()
        self.sock_fd = sock_fd
        self.wake_fd = wake_fd
        self._poll_in = native.POLLIN | native.POLLPRI | native.POLLERR | native.POLLHUP
        self._poll = native.poll()
        self._poll.register(sock_fd, self._poll_in)
        self._poll.register(wake_fd, native.POLLIN)

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        """Wait up to ``timeout`` seconds (None: no bound); (sock ready, woken).

        An error or hang-up on the connection counts as ready: reading it
        raises, which is how the reader learns of it.
        """
        events = self._poll.poll(None if timeout is None else timeout * 1000)
        return _split(events, self.wake_fd)


class GreenPoller(Poller):
    """The same wait in an eventlet-patched process: only the calling green thread sleeps.

    It waits through the hub with listeners of its own rather than eventlet's
    ``select``, which costs a good deal more per wait, and which switches
    into the waiting green thread a second time, wherever it then is, when
    both sockets become readable at once. Here every wait has a token, and
    a callback of a wait that is over does nothing.
    """

    def __init__(self, sock_fd: int, wake_fd: int) -> None:
        super().__init__(sock_fd, wake_fd)
        import greenlet
        from eventlet import hubs

        self._get_hub = hubs.get_hub
        self._current = greenlet.getcurrent
        self._waiting: tuple[object, Any] | None = None  # (token, green thread)

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        events = self._poll.poll(0)
        if events or timeout == 0:
            return _split(events, self.wake_fd)
        hub = self._get_hub()
        current = self._current()
        token = object()
        self._waiting = (token, current)
        fire = self._fire
        listeners = [
            hub.add(
                hub.READ, self.sock_fd, functools.partial(fire, token, _READY), current.throw, None
            )
        ]
        timer = None
        try:
            listeners.append(
                hub.add(
                    hub.READ,
                    self.wake_fd,
                    functools.partial(fire, token, _WOKEN),
                    current.throw,
                    None,
                )
            )
            if timeout is not None:
                timer = hub.schedule_call_global(timeout, fire, token, _TIMED_OUT, None)
            outcome: tuple[bool, bool] = hub.switch()
            return outcome
        finally:
            self._waiting = None
            for listener in listeners:
                hub.remove(listener)
            if timer is not None:
                timer.cancel()

    def _fire(self, token: object, outcome: tuple[bool, bool], fd: Any) -> None:
        """A listener's (or the timer's) callback: end the wait ``token`` if it is on."""
        waiting = self._waiting
        if waiting is not None and waiting[0] is token:
            self._waiting = None
            waiting[1].switch(outcome)


_READY, _WOKEN, _TIMED_OUT = (True, False), (False, True), (False, False)


def _split(events: list[tuple[int, int]], wake_fd: int) -> tuple[bool, bool]:
    woken = any(fd == wake_fd for fd, _ in events)
    return len(events) > (1 if woken else 0), woken


def poller(sock_fd: int, wake_fd: int) -> Poller:
    """The poller for this kind of process."""
    cls = GreenPoller if green.patched() else Poller
    return cls(sock_fd, wake_fd)


def readable(sock: Any) -> bool:
    """Whether bytes (or an error) wait on ``sock``; never blocks."""
    native = native_select()
    try:
        probe = native.poll()
        probe.register(sock.fileno(), native.POLLIN | native.POLLPRI)
        return any(mask & native.POLLIN for _, mask in probe.poll(0))
    except (OSError, ValueError):
        return False
