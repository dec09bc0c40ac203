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
    """The same wait in an eventlet-patched process: only the calling green thread sleeps."""

    def wait(self, timeout: float | None) -> tuple[bool, bool]:
        events = self._poll.poll(0)
        if events or timeout == 0:
            return _split(events, self.wake_fd)
        ready = green.wait_readable((self.sock_fd, self.wake_fd), timeout)
        return self.sock_fd in ready, self.wake_fd in ready


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
