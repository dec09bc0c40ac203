"""Heartbeats a blocked eventlet hub cannot starve: writes from a native thread.

In a threaded process a link's keeper thread sends the AMQP heartbeats
(:mod:`~rpcframe.drivers.amqp.link`). In an eventlet-patched process that
keeper is a green thread, and an endpoint that blocks the hub with a call
eventlet did not make green (a C library, a native ``time.sleep``) would stop
it: RabbitMQ would then close a connection that is in fact fine. That is
the heartbeat starvation oslo.messaging knew under mod_wsgi and eventlet
(its ``heartbeat_in_pthread`` option); here it is always dealt with, as
follows.

* Every connection made in a patched process gets a :class:`Guard`: a native
  lock around each of py-amqp's socket writes (and, on TLS, reads, as the TLS
  state is shared). Green threads take it only while they already hold the
  link's (green) I/O lock, so at most one green thread ever waits for it, and
  only for as long as a native thread holds it.
* A native thread may then write whole frames between the green threads'
  frames: :meth:`Guard.send` takes the lock (never waiting long), checks the
  socket has room, and writes without blocking. It never touches a green lock,
  the hub or logging, so it cannot deadlock or be starved by the hub.
* Each link with heartbeats has a :class:`Pulse`, a native thread that writes
  a heartbeat frame whenever the connection has written nothing for
  ``heartbeat / heartbeat_rate`` seconds (at most half the heartbeat). The
  green keeper still reads the socket and checks that the broker is alive,
  once the hub runs again.

The same :meth:`Guard.send` carries call-monitor heartbeats from a native
timer thread (:meth:`~rpcframe.drivers.amqp.publisher.Publisher.detached_sender`).

What a native thread cannot do is write while a green thread is part way
through a write of its own that the hub stopped: it then waits for its next
tick. That needs a hub blocked in the middle of a large write (or, on TLS,
of a synchronous broker round trip), which short heartbeat-sized writes
never hit.
"""

from __future__ import annotations

import _socket
import contextlib
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from rpcframe import green
from rpcframe.drivers.amqp import pyamqp
from rpcframe.drivers.amqp.polling import native_select

__all__ = ["HEARTBEAT_FRAME", "Guard", "Pulse"]

#: An AMQP heartbeat: frame type 8, channel 0, empty payload, frame end.
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

#: Longest a native thread waits for the lock before giving up this once.
_LOCK_WAIT = 0.05
#: Longest a native thread waits for the socket to take the rest of a frame.
_WRITE_WAIT = 0.5
#: Longest closing a connection waits for a native writer to finish.
_RETIRE_WAIT = 1.0


class Guard:
    """Lets native threads write whole frames on a connection green threads use.

    Made for a connection's socket ``sock`` and put around its py-amqp I/O by
    :func:`install`. ``last_write`` is when anything was last written
    (monotonic clock); ``beats`` counts the heartbeats native threads wrote.
    """

    def __init__(self, sock: Any) -> None:
        self._lock = green.native_threading().Lock()
        self._fd = sock.fileno()
        # TLS: the TLS object itself, non-blocking underneath (eventlet's
        # sockets are). TCP: the OS socket (a GreenSocket's is .fd).
        self._tls = getattr(sock, "_sslobj", None)
        self._raw = getattr(sock, "fd", sock)
        self._poll = native_select()
        self.last_write = time.monotonic()
        self.retired = False
        self.beats = 0

    @property
    def tls(self) -> bool:
        return self._tls is not None

    def guarded_write(self, write: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """py-amqp's ``write`` (of whole frames) under the native lock, noting when."""
        lock = self._lock
        clock = time.monotonic

        def guarded(data: Any) -> Any:
            with lock:
                result = write(data)
                self.last_write = clock()
                return result

        return guarded

    def guarded_read(self, read: Callable[[int], bytes]) -> Callable[[int], bytes]:
        """py-amqp's TLS ``read`` under the native lock."""
        lock = self._lock

        def guarded(size: int) -> bytes:
            with lock:
                return read(size)

        return guarded

    def send(self, data: bytes) -> bool:
        """From a native thread: write ``data`` (whole frames) now; False if not written.

        Never waits more than a fraction of a second, never raises, never logs.
        A frame left half written (the socket refused the rest) would corrupt
        the stream, so the connection is then shut down and the link reconnects.
        """
        if self.retired or not self._lock.acquire(timeout=_LOCK_WAIT):
            return False
        try:
            if self.retired or not self._writable(0.0):
                return False
            view = memoryview(data)
            # Once a TLS write is tried, TLS holds part of it and only a retry
            # of the same bytes may follow; on TCP, once a byte is sent.
            started = self._tls is not None
            deadline = time.monotonic() + _WRITE_WAIT
            try:
                while view:
                    sent = self._write_some(view)
                    started = started or sent > 0
                    view = view[sent:]
                    if view and not self._writable(max(0.0, deadline - time.monotonic())):
                        break
            except (OSError, ValueError):
                pass
            if view:
                if started:
                    self._abandon()
                return False
            self.last_write = time.monotonic()
            return True
        finally:
            self._lock.release()

    def beat(self, interval: float) -> None:
        """From a native thread: a heartbeat, if nothing was written for ``interval`` s."""
        if time.monotonic() - self.last_write >= interval and self.send(HEARTBEAT_FRAME):
            self.beats += 1

    def retire(self) -> None:
        """The connection closes: native threads write on it no more."""
        acquired = self._lock.acquire(timeout=_RETIRE_WAIT)
        self.retired = True
        if acquired:
            self._lock.release()

    # -- socket work (lock held, native thread) -----------------------------------------

    def _write_some(self, view: memoryview) -> int:
        if self._tls is not None:
            try:
                written: int = self._tls.write(view)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                return 0
            return written
        try:
            count: int = self._raw.send(view, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0
        return count

    def _writable(self, timeout: float) -> bool:
        native = self._poll
        try:
            probe = native.poll()
            probe.register(self._fd, native.POLLOUT)
            events = probe.poll(timeout * 1000)
        except (OSError, ValueError):
            return False
        return any(mask & native.POLLOUT for _, mask in events)

    def _abandon(self) -> None:
        self.retired = True
        with contextlib.suppress(OSError, ValueError, TypeError):
            # The OS socket's own shutdown (not TLS's, which drops its state
            # under the green threads): they see the connection end.
            _socket.socket.shutdown(self._raw, socket.SHUT_RDWR)


def install(conn: Any) -> Guard:
    """Put a :class:`Guard` around the py-amqp connection's socket I/O; return it.

    Writes are always guarded; reads too on TLS, whose state one thread at a
    time may change.
    """
    guard = Guard(pyamqp.socket_of(conn))
    pyamqp.wrap_io(conn, guard.guarded_write, guard.guarded_read if guard.tls else None)
    return guard


class Pulse:
    """A native thread writing a link's heartbeats while its connection is silent.

    ``current`` returns the Guard of the link's connection (None while it has
    none). Every ``interval / 2`` seconds the thread writes a heartbeat if
    nothing was written for ``interval`` seconds.
    """

    def __init__(self, name: str, current: Callable[[], Guard | None], interval: float) -> None:
        native = green.native_threading()
        self.interval = interval
        self._current = current
        self._stop = native.Event()
        self._thread = native.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        tick = self.interval / 2
        while not self._stop.wait(tick):
            guard = self._current()
            if guard is not None:
                guard.beat(self.interval)

    def stop(self, timeout: float) -> None:
        """Stop and join the thread (it is never blocked for long)."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout)
