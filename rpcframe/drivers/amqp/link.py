"""One AMQP connection shared by many threads: connect, read, write, heartbeat.

A :class:`Link` owns one broker connection (kombu's py-amqp transport) and
the rules that make it safe and fast to use from any thread:

* **Writes** (publishes, acks, heartbeats) happen under the link's I/O lock,
  from whichever thread wants to write; they never wait for the broker.
* **Reads** are done by whichever thread needs something from the socket (a
  publisher confirm, a delivery), one at a time: the *reader*. Other threads
  that wait sleep on their own condition and are woken when what they wait
  for has arrived, or when the reader leaves and one of them must take over.
  A lone caller waiting for its reply therefore reads it straight from the
  socket, with no thread hand-off. The reader waits in ``poll()`` without
  any lock and takes the I/O lock only to read and dispatch one frame, so
  writers are never held up by a waiting reader.
* **Exclusive** sections (declare, bind, consume, cancel: anything that needs
  a synchronous answer from the broker) take the reader role, waking a
  blocked reader to hand it over, plus the I/O lock.
* A **keeper thread** (:mod:`~rpcframe.drivers.amqp.keeper`) calls
  :meth:`Link.beat`, which sends AMQP heartbeats, reads the socket while
  nobody else does (so the broker's heartbeats and stray frames are consumed
  even while the application is busy) and notices a dead peer; for links
  that carry consumers it reconnects at once and restores them.
* In an eventlet-patched process all of these threads are green; waiting on
  the socket goes through the hub (:mod:`~rpcframe.drivers.amqp.polling`),
  and a native **pulse** thread writes the heartbeats, which a hub blocked by
  an endpoint would otherwise starve (:mod:`~rpcframe.drivers.amqp.pulse`).

Every connection has a *generation*. Things learnt on one connection
(delivery tags, declared exchanges, pending confirms) belong to its
generation and are void after a reconnect.

The state machine
-----------------

Read this before changing anything below; the stress test
(``tests/functional/test_amqp_link_stress.py``) holds the code to it.

*The connection* (``_conn``, its ``_poller`` and ``_generation``, changed
together under ``_lock``)::

               ensure() / the keeper: _attempt()
    DOWN(g) ──────────────────────────────────────▶ UP(g+1)
       ▲                                               │
       └───────────── broken(g+1, error) ──────────────┘
    DOWN, UP ─────────── close() ──────────────────▶ CLOSED (final)

``DOWN`` to ``UP``: one thread at a time (the connect lock): a user in
:meth:`Link.ensure` or the keeper. The connection is opened and set up
(``setup``: channels, declarations, consumers) before anyone else sees it,
then published with a poller of its own, and every waiter is notified.
``UP`` to ``DOWN``: any thread that sees the connection fail (the reader, a
writer, the keeper, a consumer the broker cancelled, a declaration refused),
any number of times (a stale generation is ignored): unpublish under the
lock and notify every waiter; shut the socket down (which wakes a reader
waiting on it) and write the wake-up socket (which wakes a green one); close
the socket, or leave that to the reader if another thread holds the role
(see below); nudge the keeper.

*The reader role* (``_reader``: None or one thread; at most one thread reads
or polls the socket)::

    FREE ── wait(): ready() false, nobody exclusive ──▶ READ(t)  in _read()
    FREE ── beat(): connection up, nobody wants it ───▶ READ(keeper), once round
    FREE ── exclusive(): once FREE ───────────────────▶ EXCL(t)   I/O lock held
    READ(t), EXCL(t) ── t: _leave() ──────────────────▶ FREE

Only its holder gives the role up (``_leave``), and hands it on: to a
thread waiting for an exclusive section first, else to the first waiter; it
closes the connections that broke while it held the role. While
``_exclusive_wanted`` is non-zero nobody else takes the role. A reader
leaves ``_read`` when its ``ready()`` holds, an exclusive section is wanted,
the link closes, its deadline or budget is reached, or its connection is no
longer the link's (LinkDown); an I/O error breaks the connection first.

*What wakes whom*:

* a waiter (its own condition, on ``_lock``): the reader, when a frame
  callback said ``changed()`` and the waiter's ``ready()`` holds; the
  thread leaving the role, if this waiter is first in line; any change of
  the connection (``_notify_all``), and :meth:`Link.kick`;
* an exclusive section waiting for the role (``_exclusive_turn``): the
  thread leaving the role, and ``_notify_all``;
* the reader in ``poll()``: bytes or a hang-up on its socket; the wake-up
  socket, written by ``broken``, ``kick``, ``close`` and, every second
  until it has the role, a waiting exclusive section;
* the keeper: its tick, and a nudge from ``broken`` and ``close``.

*What holds it together*:

1. A thread checks ``ready()`` under ``_lock`` before it sleeps, and
   whoever makes it true notifies under ``_lock``: no wake-up is lost.
2. ``_lock`` and the I/O lock are never held together; frames are read and
   written only under the I/O lock.
3. Every change of the connection is followed by a write of the wake-up
   socket, and the reader looks at the connection after every wake-up and
   before every read: it never waits on a connection that is gone.
4. A socket is closed only when no thread may be polling it, so its number
   is never given to another file under a waiting reader.
5. Each hand-off between threads calls ``_HOOK(point)`` when a test set it
   (the points are :data:`HANDOFFS`); in production ``_HOOK`` is None and
   each costs a comparison.

Attempts to connect are paced and spread over the URL's hosts as
oslo.messaging does (:mod:`~rpcframe.drivers.amqp.reconnect`). A refused
login, or a broker TLS certificate that fails verification, fails at once
with AuthenticationError.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import amqp
import amqp.exceptions

from rpcframe import exceptions
from rpcframe.drivers.amqp import errors, frames, polling, pulse, pyamqp
from rpcframe.drivers.amqp.connection import (
    CONNECT_TIMEOUT,
    IO_TIMEOUT,
    Host,
    LinkSettings,
    discard,
    guard_of,
    idle_timeout,
    open_connection,
)
from rpcframe.drivers.amqp.errors import IO_ERRORS, describe
from rpcframe.drivers.amqp.keeper import Keeper
from rpcframe.drivers.amqp.reconnect import Schedule

__all__ = ["Host", "Link", "LinkDown", "LinkSettings"]

LOG = logging.getLogger(__name__)

#: Most frames the keeper reads in one go, so it gets back to heartbeats.
_BEAT_BUDGET = 1000

#: Tests only: called as ``_HOOK(point)`` at every hand-off between threads
#: (see the module documentation), to widen the race windows. None in
#: production, where each hand-off then costs one comparison.
_HOOK: Callable[[str], None] | None = None

#: The hand-off points, as passed to ``_HOOK``.
HANDOFFS = frozenset(
    {
        "attempt.publish",  # a new connection is about to be published
        "broken.unpublished",  # the connection is unpublished, its socket still open
        "broken.woken",  # its socket is shut down and the reader woken, not closed yet
        "write",  # a writer holds the I/O lock, about to write
        "wait.reader",  # a thread took the reader role, not reading yet
        "wait.sleep",  # a waiter is about to sleep on its condition
        "read.polled",  # the reader is back from poll(), the wake-up not yet handled
        "read.pump",  # the reader holds the I/O lock, about to read frames
        "notify",  # the reader is about to wake the waiters a frame made ready
        "exclusive.wait",  # an exclusive section waits for the role
        "exclusive.taken",  # an exclusive section has the role, not the I/O lock yet
        "leave",  # the role was given up and handed on
        "beat",  # the keeper decided whether to read, not yet read
    }
)


class LinkDown(Exception):
    """Internal: the connection of a link broke (or the link closed).

    Never leaves the driver; callers reconnect or translate it.
    """


class _Waiter:
    __slots__ = ("cond", "ready")

    def __init__(self, cond: threading.Condition, ready: Callable[[], bool]) -> None:
        self.cond = cond
        self.ready = ready


SetupFn = Callable[[amqp.Connection, int], None]


class Link:
    """A self-healing AMQP connection; see the module documentation.

    :param settings: where and how to connect.
    :param name: names the keeper thread and log lines.
    :param setup: called with a fresh connection and its generation, before
        any other thread may use it: open channels, declare, consume.
    :param keep_connected: reconnect eagerly (links that carry consumers).
    """

    def __init__(
        self,
        settings: LinkSettings,
        name: str,
        setup: SetupFn,
        keep_connected: bool = False,
    ) -> None:
        self.settings = settings
        self.name = name
        self._setup = setup
        self.keep_connected = keep_connected
        self._lock = threading.Lock()
        self.io_lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._exclusive_turn = threading.Condition(self._lock)
        self._conn: amqp.Connection | None = None
        self._generation = 0
        self._reader: int | None = None
        self._exclusive_wanted = 0
        self._waiters: list[_Waiter] = []
        self._schedule = Schedule(settings)
        self._closed = False
        self._stop = threading.Event()
        self._changed = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._keeper = Keeper(self, self._stop)
        # The current connection's poller: made with it, dropped with it.
        self._poller: polling.Poller | None = None
        # Broken connections whose socket a reader may still be polling:
        # closed when it leaves (see broken()).
        self._retired: list[amqp.Connection] = []

    # -- state ------------------------------------------------------------------

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def changed(self) -> None:
        """Tell the reader that a callback made some waiter ready.

        Called from frame callbacks, which run in the reader; the reader
        then wakes the waiters whose condition holds.
        """
        self._changed = True

    # -- connecting ---------------------------------------------------------------

    def ensure(self, deadline: float | None, retry: int | None = None) -> int:
        """Return the current generation, connecting first if needed.

        ``retry`` bounds the connection attempts this call makes, as
        oslo.messaging's does: None or -1 no bound, 0 one attempt and no
        retry, N one attempt and N retries. Raises AuthenticationError for refused
        credentials, MessageDeliveryFailure when the attempts are used up,
        MessagingTimeout at ``deadline``, TransportBroken when setting up
        the connection fails for good, and TransportClosed once the link is
        closed.
        """
        if self._conn is not None:
            return self._generation
        if not self._connect_lock.acquire(timeout=_remaining(deadline, default=-1)):
            raise exceptions.MessagingTimeout("timed out waiting for a RabbitMQ connection")
        try:
            attempts = 0
            while self._conn is None:
                if self._closed:
                    raise errors.closed()
                if retry is not None and retry >= 0 and attempts > retry:
                    raise exceptions.MessageDeliveryFailure(
                        f"could not reach RabbitMQ after {attempts} attempt(s): {self._why()}"
                    )
                self._pause(deadline)
                attempts += 1
                self._attempt(deadline)
            if not self._closed:
                self._keeper.start()
            return self._generation
        finally:
            self._connect_lock.release()

    def _pause(self, deadline: float | None) -> None:
        """Wait before the next attempt, per the backoff rules."""
        start = self._schedule.start_at()
        wait = start - time.monotonic()
        if wait <= 0:
            return
        if deadline is not None and start > deadline:
            self._stop.wait(max(0.0, deadline - time.monotonic()))
            raise exceptions.MessagingTimeout(f"timed out reconnecting to RabbitMQ ({self._why()})")
        if self._stop.wait(wait):
            raise errors.closed()

    def _attempt(self, deadline: float | None) -> None:
        """One connection attempt to the next host; sets up and publishes it."""
        host = self._schedule.next_host()
        conn = None
        try:
            conn = open_connection(self.settings, host, _remaining(deadline, CONNECT_TIMEOUT))
            generation = self._generation + 1
            self._setup(conn, generation)
            poller = self._poller_for(conn)
        except errors.REFUSALS as exc:
            # Refused credentials, or a certificate that failed verification:
            # no further attempt would mend either.
            discard(conn)
            raise errors.translate(
                exc, errors.refusal(exc, host, host.username, self.settings.virtual_host)
            ) from exc
        except exceptions.MessagingException:
            discard(conn)
            raise
        except IO_ERRORS as exc:
            discard(conn)
            self._schedule.failed(exc)
            log = LOG.warning if self._schedule.failures == 1 else LOG.info
            log("%s: cannot connect to RabbitMQ at %s: %s", self.name, host, describe(exc))
            return
        if _HOOK is not None:
            _HOOK("attempt.publish")
        with self._lock:
            if self._closed:
                discard(conn)
                raise errors.closed()
            self._conn = conn
            self._poller = poller
            self._generation = generation
            self._schedule.succeeded()
            self._notify_all()
        LOG.info("%s: connected to RabbitMQ at %s", self.name, host)

    def _why(self) -> str:
        return self._schedule.why()

    def _poller_for(self, conn: amqp.Connection) -> polling.Poller:
        """The poller of a new connection, made while its socket is surely open."""
        sock = pyamqp.socket_of(conn)
        if sock is None:
            raise EOFError("the connection closed while being set up")
        return polling.poller(sock.fileno(), self._wake_r.fileno())

    def broken(self, generation: int, error: BaseException, delay: float = 0.0) -> None:
        """Declare connection ``generation`` dead; the next user reconnects.

        Safe to call from any thread, repeatedly; a stale generation is
        ignored. ``delay`` postpones the next attempt (consumer cancelled).
        """
        with self._lock:
            conn = self._conn
            if conn is None or generation != self._generation:
                return
            self._conn = None
            self._poller = None
            self._schedule.lost(error, delay)
            # Another thread holding the reader role may be polling this
            # socket, or about to: closing it now would give its number to
            # the next socket opened, which that reader would then wait on.
            # It is shut down now (which wakes the reader) and closed when
            # the reader leaves.
            reader = self._reader
            deferred = reader is not None and reader != threading.get_ident()
            if deferred:
                self._retired.append(conn)
            self._notify_all()
        if _HOOK is not None:
            _HOOK("broken.unpublished")
        if not self._closed:
            LOG.warning(
                "%s: lost the RabbitMQ connection: %s; reconnecting", self.name, describe(error)
            )
        # Shut the socket first: that wakes a reader blocked in poll(). A
        # green reader waits through the hub, which would not see that event
        # once the socket is closed: the wake-up socket tells it instead.
        sock = pyamqp.socket_of(conn)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._wake()
        if _HOOK is not None:
            _HOOK("broken.woken")
        if not deferred:
            with self.io_lock:
                discard(conn)
        self._keeper.nudge()

    # -- writing ------------------------------------------------------------------

    def write(self, generation: int, fn: Callable[[amqp.Connection], Any]) -> Any:
        """Run ``fn(connection)`` under the I/O lock if ``generation`` is current.

        Raises LinkDown if the connection changed or broke.
        """
        with self.io_lock:
            conn = self._conn
            if conn is None or generation != self._generation:
                raise LinkDown(self._why())
            if _HOOK is not None:
                _HOOK("write")
            try:
                return fn(conn)
            except IO_ERRORS as exc:
                error = exc
        self.broken(generation, error)
        raise LinkDown(describe(error)) from error

    # -- reading -------------------------------------------------------------------

    def wait(self, ready: Callable[[], bool], deadline: float | None) -> bool:
        """Block until ``ready()`` holds (True) or ``deadline`` passes (False).

        Reads the socket itself when no other thread does. ``ready`` is
        called with the link's lock held and must only look at plain state.
        Raises LinkDown if the connection breaks (or is already broken)
        before ``ready()`` holds.
        """
        lock = self._lock
        waiter: _Waiter | None = None
        with lock:
            try:
                read_once = False
                while True:
                    if ready():
                        return True
                    if self._conn is None:
                        raise LinkDown(self._why())
                    if self._reader is None and not self._exclusive_wanted:
                        if read_once and _remaining(deadline) == 0.0:
                            return False
                        if waiter is not None:
                            # The reader is out of line: leaving the role, it
                            # must hand it to another waiter, not to itself.
                            self._waiters.remove(waiter)
                            waiter = None
                        self._reader = threading.get_ident()
                        conn, poller, generation = self._conn, self._poller, self._generation
                        lock.release()
                        try:
                            if _HOOK is not None:
                                _HOOK("wait.reader")
                            self._read(ready, deadline, conn, poller, generation)
                        finally:
                            lock.acquire()
                            self._leave()
                        read_once = True
                        continue
                    remaining = _remaining(deadline)
                    if remaining == 0.0:
                        return False
                    if waiter is None:
                        waiter = _Waiter(threading.Condition(lock), ready)
                        self._waiters.append(waiter)
                    if _HOOK is not None:
                        _HOOK("wait.sleep")
                    waiter.cond.wait(remaining)
            finally:
                if waiter is not None:
                    self._waiters.remove(waiter)

    def _read(
        self,
        ready: Callable[[], bool],
        deadline: float | None,
        conn: amqp.Connection | None,
        poller: polling.Poller | None,
        generation: int,
        budget: int | None = None,
    ) -> None:
        """Read and dispatch frames of ``conn`` until ready(), the deadline, or a wake-up.

        Runs as the reader, without the link's lock; ``conn``, its
        ``poller`` and ``generation`` were current when the caller took the
        reader role. ``budget`` bounds the number of frames read. Raises
        LinkDown once ``conn`` is no longer the link's connection.
        """
        sock = pyamqp.socket_of(conn)
        if conn is None or poller is None or sock is None:
            raise LinkDown(self._why())
        pending = getattr(sock, "pending", None)  # TLS: bytes decrypted but unread
        reader = frames.reader_of(conn)
        buffered = reader.inbound.buffered
        try:
            while True:
                self._notify_if_changed()
                if ready() or self._exclusive_wanted or self._closed:
                    return
                # After every wake-up, before waiting again: the poller
                # watches this connection's socket only.
                if self._conn is not conn:
                    raise LinkDown(self._why())
                if not buffered() and not (pending and pending()):
                    ready_to_read, woken = poller.wait(_remaining(deadline))
                    if _HOOK is not None:
                        _HOOK("read.polled")
                    if woken:
                        _drain(self._wake_r)
                    if not ready_to_read:
                        if woken:
                            continue
                        return
                with self.io_lock:
                    if self._conn is not conn:
                        raise LinkDown(self._why())
                    if _HOOK is not None:
                        _HOOK("read.pump")
                    try:
                        handled = reader.pump()
                    except TimeoutError:
                        continue  # the rest of a frame is late; poll again
                if budget is not None:
                    budget -= handled
                    if budget <= 0:
                        return
        except IO_ERRORS as exc:
            self.broken(generation, exc)
            raise LinkDown(describe(exc)) from exc
        finally:
            self._notify_if_changed()

    def readable(self) -> bool:
        """Whether bytes wait to be read on the connection (never blocks)."""
        conn = self._conn
        sock = pyamqp.socket_of(conn)
        if sock is None:
            return False
        if pyamqp.buffered(conn) or getattr(sock, "pending", lambda: 0)():
            return True
        return polling.readable(sock)

    def _notify_if_changed(self) -> None:
        """Wake the waiters whose condition holds, if a callback said one may."""
        if not self._changed:
            return
        self._changed = False
        if _HOOK is not None:
            _HOOK("notify")
        with self._lock:
            for waiter in self._waiters:
                if waiter.ready():
                    waiter.cond.notify()

    def _leave(self) -> None:
        """Give the reader role up and pass it on. Lock held.

        Closes the connections broken while this thread held the role (the
        lock is let go meanwhile, as closing takes the I/O lock).
        """
        self._reader = None
        self._hand_over()
        if _HOOK is not None:
            _HOOK("leave")
        if self._retired:
            retired, self._retired = self._retired, []
            self._lock.release()
            try:
                with self.io_lock:
                    for conn in retired:
                        discard(conn)
            finally:
                self._lock.acquire()

    def _hand_over(self) -> None:
        """Pass the reader role on. Lock held."""
        if self._exclusive_wanted:
            self._exclusive_turn.notify()
        elif self._waiters:
            self._waiters[0].cond.notify()

    def _notify_all(self) -> None:
        """Wake every waiter (state changed for all). Lock held."""
        for waiter in self._waiters:
            waiter.cond.notify()
        self._exclusive_turn.notify_all()

    def _wake(self) -> None:
        """Wake the reader out of poll() (never blocks; a full socket is awake anyway)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def kick(self) -> None:
        """Wake every waiter and the reader, so they look at their state again."""
        with self._lock:
            self._notify_all()
        self._wake()

    @contextlib.contextmanager
    def exclusive(self, deadline: float | None) -> Iterator[tuple[amqp.Connection, int]]:
        """Hold the connection alone: no reader, no writer. Yields (conn, generation).

        For synchronous broker methods. Raises LinkDown if not connected
        (or the connection breaks inside), MessagingTimeout at ``deadline``.
        """
        with self._lock:
            self._exclusive_wanted += 1
            try:
                while self._reader is not None:
                    self._wake()
                    remaining = _remaining(deadline)
                    if remaining == 0.0:
                        raise exceptions.MessagingTimeout("timed out waiting for the connection")
                    if _HOOK is not None:
                        _HOOK("exclusive.wait")
                    self._exclusive_turn.wait(min(remaining or 1.0, 1.0))
                self._reader = threading.get_ident()
            finally:
                self._exclusive_wanted -= 1
        if _HOOK is not None:
            _HOOK("exclusive.taken")
        try:
            with self.io_lock:
                conn, generation = self._conn, self._generation
                if conn is None:
                    raise LinkDown(self._why())
                try:
                    _set_timeout(conn, deadline)
                    yield conn, generation
                except IO_ERRORS as exc:
                    error: BaseException | None = exc
                else:
                    error = None
                finally:
                    if conn is not None and self._conn is conn:
                        with contextlib.suppress(OSError):
                            _set_timeout(conn, None)
            if error is not None:
                self.broken(generation, error)
                raise LinkDown(describe(error)) from error
        finally:
            with self._lock:
                self._leave()
            self._notify_if_changed()

    # -- keeping the connection alive (the keeper thread calls these) ---------------------

    def guard(self) -> pulse.Guard | None:
        """The Guard of the current connection (patched processes), else None."""
        return guard_of(self._conn)

    def beat(self) -> None:
        """Read what arrived while nobody was reading, send a heartbeat if due.

        Consumes heartbeats, confirms and deliveries without blocking anyone
        who wants to read; a connection the broker stopped answering is
        declared broken.
        """
        with self._lock:
            conn, poller, generation = self._conn, self._poller, self._generation
            idle = self._reader is None and not self._exclusive_wanted and conn is not None
            if idle:
                self._reader = threading.get_ident()
        if _HOOK is not None:
            _HOOK("beat")
        if idle:
            try:
                with contextlib.suppress(LinkDown):
                    self._read(
                        _never, time.monotonic(), conn, poller, generation, budget=_BEAT_BUDGET
                    )
            finally:
                with self._lock:
                    self._leave()
        with self.io_lock:
            conn = self._conn
            if conn is None or generation != self._generation:
                return
            if not idle and self.readable():
                # Another thread has the reader role but has not read yet
                # (a hub that was blocked is only now running again): bytes
                # from the broker are waiting, so it is alive.
                pyamqp.note_received(conn)
            try:
                conn.heartbeat_tick(rate=max(self.settings.heartbeat_rate, 1))
                return
            except IO_ERRORS as exc:
                error = exc
        self.broken(generation, error)

    # -- closing ---------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Close the connection and stop the keeper thread. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, self._conn, self._poller = self._conn, None, None
            retired, self._retired = self._retired, []
            self._notify_all()
        self._stop.set()
        self._keeper.nudge()
        self._wake()
        if conn is not None:
            deadline = time.monotonic() + timeout
            if self.io_lock.acquire(timeout=timeout):
                try:
                    _set_timeout(conn, deadline)
                    with contextlib.suppress(*IO_ERRORS):
                        conn.close()
                    discard(conn)
                finally:
                    self.io_lock.release()
            else:
                discard(conn)
        for old in retired:
            discard(old)
        self._keeper.stop(timeout)
        self._wake_r.close()
        self._wake_w.close()


def _never() -> bool:
    return False


def _remaining(deadline: float | None, default: float | None = None) -> Any:
    """Seconds left until ``deadline`` (never negative), or ``default`` without one."""
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


def _set_timeout(conn: amqp.Connection, deadline: float | None) -> None:
    """Bound socket calls by ``deadline``; None: back to the idle time limit."""
    left = idle_timeout() if deadline is None else min(IO_TIMEOUT, max(0.01, _remaining(deadline)))
    sock = pyamqp.socket_of(conn)
    if sock is not None:
        sock.settimeout(left)
