"""Eventlet: whether this process is monkey-patched, and the native threads beside its hub.

Most OpenStack services call ``eventlet.monkey_patch()`` before anything
else. Their threads, locks, sockets and ``select`` are then green: they all
run on one OS thread, the hub's, and switch only where they would block.
rpcframe runs there exactly as in a threaded process; the few places where
the two worlds need different code ask :func:`patched` once and keep the
answer.

Two things eventlet changes matter on a message path:

* ``select.poll`` is gone, and a native ``poll()`` that blocks would stop
  every green thread. :func:`wait_readable` waits through the hub instead.
* Anything a green thread does can be starved by an endpoint that blocks the
  hub with a call eventlet did not make green (a C library, a native
  ``time.sleep``). What must go on regardless (AMQP heartbeats, call-monitor
  heartbeats) runs on a native OS thread made with :func:`native_threading`.
  Such a thread must never wait on a green lock or socket (only the hub's own
  thread may switch between green threads): it shares state with green code
  through native locks held for microseconds, and it does not log (logging's
  locks are green).

Nothing here imports eventlet: a process that never imported it is not
patched, and eventlet stays unimported.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Sequence

__all__ = ["native_threading", "patched", "wait_readable"]

#: The modules whose patching changes how rpcframe must wait and run.
_MODULES = ("thread", "socket", "select")


@functools.cache
def patched() -> bool:
    """Whether eventlet has monkey-patched threads, sockets or ``select`` here.

    Asked once per process (the first link or server asks): a process patches
    before it starts messaging, or not at all.
    """
    return _eventlet_patched()


def _eventlet_patched() -> bool:
    if "eventlet" not in sys.modules:
        return False
    patcher = sys.modules.get("eventlet.patcher")
    if patcher is None:
        return False
    return any(patcher.is_monkey_patched(name) for name in _MODULES)


def native_threading() -> types.ModuleType:
    """The ``threading`` module whose threads and locks are the OS's own.

    In a patched process, eventlet's saved original; otherwise ``threading``.
    """
    if not patched():
        return threading
    import eventlet.patcher  # already imported: the process is patched

    module: types.ModuleType = eventlet.patcher.original("threading")
    return module


def wait_readable(fds: Sequence[int], timeout: float | None) -> list[int]:
    """Wait through the hub until one of ``fds`` is readable; those that are.

    For patched processes only: the calling green thread sleeps, the others
    run. An empty list means ``timeout`` passed.
    """
    from eventlet.green import select  # already imported: the process is patched

    # eventlet's select skips a descriptor given as the int 0 (it tests the
    # object for truth), and a daemon's socket may well be 0: give objects.
    readable, _, _ = select.select([_Descriptor(fd) for fd in fds], (), (), timeout)
    return [descriptor.fd for descriptor in readable]


class _Descriptor:
    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd
