"""One process's ZeroMQ node: its listening socket, its connections and the loop that owns them.

Every driver of a process on the same URL and options shares one node
(:func:`acquire`, :func:`release`), so a process has one listening socket,
a ROUTER bound once (lazily: a process that only sends never listens), and
one connection, a DEALER, to each peer process it sends to, whatever the
topics. A ZeroMQ socket must never be used by two threads at once; here
every use of a socket, and all of :mod:`.peers`' state, is under the node's
I/O lock. The node's I/O loop (a thread named ``rpcframe-zmq-io``; a green
thread in an eventlet-patched process) reads; a sending thread writes its
message itself, under the lock, with no hand-off to the loop (a hand-off
costs a thread wake-up each way, which is most of a call on the loopback).

The loop takes the lock to read and lets it go to wait, and it waits on the
sockets' ``ZMQ_FD`` descriptors, not on the sockets (which would be a use
of them without the lock). Those descriptors only say that something may
have changed, and any use of a socket may take that news. A descriptor
that said so stays readable until the socket is used; so before it waits
again the loop asks the sockets that may hold news: those whose
descriptors its wait reported, and the *dirty* ones (:attr:`Watched.dirty`:
written to, or read to the end of a batch, since they were last found
empty), until none is readable. A socket found empty and not used since
needs no asking: its next news makes its descriptor readable. A sender
that finds, after its write, a socket readable (or a socket, or a timer,
the sleeping loop does not know of) leaves it dirty and wakes the loop
through its wake-up socket. Other work for the loop goes through a queue
and the same wake-up socket (:meth:`Node.call_soon`).

The reading role. A thread that waits for its own message (a caller for
its reply, a server worker for a request) need not wait for the loop to
read it and hand it over (a wake-up of the loop, then one of the thread:
most of a call's latency on the loopback). An empty :meth:`.listener.ZmqListener.poll`
asks for the role (:meth:`Node.read_for`), and while it holds it reads and
waits on the sockets itself, doing all the loop would (every socket,
commands, timers). At most one thread holds it; the states and moves:

* **loop reads** (no reader): the loop reads, then waits on the sockets.
  A poller that asks takes the role: **thread reads**. (The loop may be
  waiting on the same descriptors meanwhile; when it next wakes it sees a
  reader and parks without reading.)
* **thread reads**: a poller that asks now is put among the *candidates*
  and waits on its mailbox; whatever the reader reads for it is put there
  and wakes it (a condition). The loop, if it wakes, parks: it waits on a
  condition, and looks again after ``_LINGER``, then less and less often
  while the role stays taken (the wait doubles: up to ``_PARKED_MAX``
  while the same reader holds on, up to ``_LOOKS_MAX`` while readers come
  and go, as a server's worker does between requests: each look is a
  wake-up of the loop's thread).
* the reader leaves **with a delivery** (it is likely back soon: a worker
  that handles a request, a caller's next call): the role is free and
  nobody is told; the reader takes it again when it polls again, or the
  parked loop, at a look that finds the role free for ``_LINGER`` already,
  takes over (**loop reads**); a look that finds it free for less waits the
  rest of ``_LINGER``. So a process whose readers stay away reads again
  within ``_LOOKS_MAX`` + ``_LINGER``. A reader that held on for longer
  than ``_LINGER`` tells the parked loop, whose looks may be far apart by
  then.
* the reader leaves **without** (its deadline passed, its mailbox closed):
  the first candidate still blocked on its mailbox is woken to take the
  role (:meth:`.listener.Mailbox.offer_turn`); with none, the parked loop
  is called back at once.
* a sender's wake-up (``_wake``) while the role is free and the loop parked
  brings the loop back at once: commands and a sender's news never wait
  for a look.
* a sender waiting for its acknowledgements (a cast, a notification) asks
  too, and holds the role as a poller does until its send is finished; but
  finding it taken, it waits on its own event and is *not* a candidate
  (``read_for(..., candidate=False)``): it cannot take the role halfway
  through that wait, and a process casting beside a listener that reads
  for hours would otherwise keep one candidate per cast.

What another thread does to the reader's mailbox (the loop read its message
while it came back between two readers, a requeue, a close) wakes the
reader through a descriptor of its own (an eventfd), never through the
loop's wake-up socket, which the loop may drain itself. In an
eventlet-patched process nobody takes the role: a hand-over there is a green
switch, and the hub lets one green thread wait on a descriptor.

What the loop does:

* receiving: a delivery is put into the mailbox of a local listener of its
  address, and acknowledged ``ok``; ``noroute`` when there is none;
  malformed frames are logged and refused (``bad``), and the loop goes on.
* sending and peers: :mod:`.peers`.

:mod:`rpcframe.handoffs` marks where a sender and the loop meet (written,
sent, the loop's lock let go before it waits; a mailbox given a delivery),
for the stress test in ``tests/unit/test_stress.py``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import zmq

from rpcframe import exceptions, green, handoffs
from rpcframe.drivers.zmq import frames
from rpcframe.drivers.zmq.listener import Delivery, Subscription
from rpcframe.drivers.zmq.matchmaker import Matchmaker
from rpcframe.drivers.zmq.peers import Outgoing, Peers
from rpcframe.drivers.zmq.routing import record_of, slot
from rpcframe.drivers.zmq.security import ZAP_ENDPOINT
from rpcframe.drivers.zmq.seen import SeenIds
from rpcframe.drivers.zmq.settings import Settings

__all__ = ["Node", "Outgoing", "Settings", "Watched", "acquire", "forget", "release"]

LOG = logging.getLogger(__name__)

#: Messages read from one socket before the loop looks at the others.
_BATCH = 256
#: Times the loop reads every socket in a turn before it looks at its timers' news.
_ROUNDS = 8
#: Received ids remembered at most, to drop repeated copies (flat memory).
_SEEN = 16_384
_HWM = 100_000
#: Seconds the parked loop waits before it looks whether the reading role is free.
_LINGER = 0.002
#: At most this long between the parked loop's looks.
_PARKED_MAX = 1.0
#: At most this long between them while readers come and go.
_LOOKS_MAX = 0.032

#: Candidates kept before the closed ones among them are forgotten.
_CANDIDATES = 64


class Watched:
    """The sockets the I/O loop watches, and their ``ZMQ_FD`` descriptors. I/O lock held."""

    def __init__(self) -> None:
        self.by_fd: dict[int, Any] = {}
        self.by_sock: dict[Any, int] = {}
        self.sockets: list[Any] = []
        self.version = 0  # changes whenever the set does
        # The sockets to ask before waiting: used since they were last found
        # empty, so their news may be taken without their descriptor saying so.
        self.dirty: set[Any] = set()

    def register(self, sock: Any) -> None:
        fd = sock.getsockopt(zmq.FD)
        self.by_fd[fd] = sock
        self.by_sock[sock] = fd
        self.dirty.add(sock)
        self._changed()

    def unregister(self, sock: Any) -> None:
        fd = self.by_sock.pop(sock, None)
        if fd is not None:
            self.by_fd.pop(fd, None)
        self.dirty.discard(sock)
        self._changed()

    def _changed(self) -> None:
        self.sockets = list(self.by_sock)
        self.version += 1


class Node:
    """See the module documentation. Thread-safe where it says so."""

    def __init__(self, settings: Settings, matchmaker: Matchmaker) -> None:
        self.settings = settings
        self.matchmaker = matchmaker
        self.users = 0
        self.endpoint: str | None = None
        self._ctx = zmq.Context()
        self._lock = threading.Lock()
        self._bind_lock = threading.Lock()
        self._closed = False
        # slot -> local listeners; the I/O loop delivers, other threads (un)subscribe.
        self._local: dict[str, list[Subscription]] = {}
        self._turns: dict[str, int] = {}
        self._pools: dict[str, set[str]] = {}  # notify record -> local pool names
        self._commands: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_lock = threading.Lock()
        self._wake_pending = False  # one wake-up at a time is enough
        self._wake_tx = self._ctx.socket(zmq.PUSH)
        self._wake_rx = self._ctx.socket(zmq.PULL)
        name = f"inproc://rpcframe-zmq-wake-{id(self)}"
        self._wake_rx.bind(name)
        self._wake_tx.connect(name)
        self._router: Any = None
        self._zap: Any = None
        self.seen = SeenIds(settings.copy_window, _SEEN)
        self._io_lock = threading.Lock()
        self._watched = Watched()
        self._watched.register(self._wake_rx)
        self._sleep_until: float | None = None  # the loop waits until then (None: no bound)
        self._ready: list[int] = []  # the descriptors the loop's last wait found readable
        # The reading role (see the module documentation): the thread that
        # reads in the loop's place, and whether the loop waits for it to end.
        self._role = threading.Condition(threading.Lock())
        self._reader: int | None = None
        self._reader_until: float | None = None  # the reader waits until then (None: no bound)
        self._parked = False
        self._called_back = False  # the parked loop must come back now (not after a look)
        self._freed_at = 0.0  # when a reader last let the role go with a delivery
        self._green = green.patched()
        self._tenures = 0  # readers so far
        self._candidates: dict[int, Any] = {}  # mailboxes whose pollers wait for the role
        self._prune_at = _CANDIDATES
        # What wakes the reader alone: the loop may be reading, and drain the
        # wake-up socket, when a message for the reader's mailbox arrives.
        self._nudge_rx, self._nudge_tx = _pipe()
        self.peers = Peers(settings, self._socket, self._watched, matchmaker, self._deliver_to)
        self._stopping = False
        if settings.curve is not None:
            self._zap = self._ctx.socket(zmq.REP)
            self._zap.linger = 0
            self._zap.bind(ZAP_ENDPOINT)
            self._watched.register(self._zap)
        self._start()

    def _start(self) -> None:
        """Start the I/O loop: a thread of its own."""
        self._thread = threading.Thread(target=self._run, name="rpcframe-zmq-io", daemon=True)
        self._thread.start()

    # -- any thread -----------------------------------------------------------

    def call_soon(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the I/O loop."""
        self._commands.append(command)
        self._wake()

    def _wake(self) -> None:
        """Make the loop look at everything again (any thread; never blocks)."""
        if self._parked and self._reader is None:
            with self._role:
                if self._parked and self._reader is None:  # still, now that the lock is held
                    self._called_back = True
                    self._role.notify()  # no reader: the parked loop comes back now
        with self._wake_lock:
            if self._closed:
                raise exceptions.TransportClosed("the ZeroMQ node is closed")
            if self._wake_pending:
                return  # the loop has a wake-up to read, and looks at everything after it
            self._wake_pending = True
            try:
                self._wake_tx.send(b"", frames.NOBLOCK)
            except zmq.Again:
                pass  # wake-ups are pending already

    def send(self, outgoing: list[Outgoing]) -> None:
        """Send each of ``outgoing`` to its first reachable candidate, from this thread.

        Each is written now if its connection is up (else it waits for it);
        its ``on_done`` tells the outcome, maybe before this returns. Raises
        TransportClosed once the node is closing.
        """
        watched = self._watched
        with self._io_lock:
            if self._stopping:
                raise exceptions.TransportClosed("the ZeroMQ node is closed")
            known = watched.version
            for each in outgoing:
                self.peers.start(each)
            if handoffs.hook is not None:
                handoffs.hook("zmq.written")
            # Writing to a socket may take the news its descriptor had for the
            # loop (an acknowledgement arrived): ask the sockets written to.
            # Only those: the others were not used. A message finished here
            # may have touched a socket it no longer names: then all of them,
            # but never the wake-up socket, whose pending news the loop must see.
            written = [each.peer.sock for each in outgoing if each.peer is not None]
            asked = written if len(written) == len(outgoing) else watched.sockets
            wake = watched.version != known
            for sock in asked:
                if sock is self._wake_rx:
                    continue
                if frames.readable(sock):
                    wake = True  # it stays dirty: whoever reads next asks it
                else:
                    watched.dirty.discard(sock)  # nothing there, and its descriptor will say
            if not wake:
                # Whoever reads runs the timers: a reader while there is one.
                until = self._sleep_until if self._reader is None else self._reader_until
                for each in outgoing:
                    if not each.done and not each.released:
                        due = min(each.deadline, each.ack_deadline or each.deadline)
                        wake = wake or until is None or due < until
        if handoffs.hook is not None:
            handoffs.hook("zmq.sent")
        if wake:
            self._wake()

    def read_for(self, waiter: Any, deadline: float | None, *, candidate: bool = True) -> bool:
        """Read the node's sockets in this thread, in the loop's place, until ``waiter`` is ready.

        ``waiter`` (a mailbox) has ``ready()``, truth (it holds a delivery),
        ``offer_turn()``, and ``reader`` and ``nudge`` attributes, which this
        sets while it reads: what another thread does to the waiter calls
        ``nudge``, which wakes this thread. Returns False at once when
        another thread holds the reading role (``waiter`` becomes a
        candidate for it) or the node is stopping: the caller then waits its
        own way. Else True once the waiter is ready or ``deadline``
        (monotonic) has passed. A waiter that cannot take the role later
        (a sender waiting for acknowledgements) passes ``candidate=False``.
        See the module documentation.
        """
        if self._green:
            return False  # one thread: a hand-over costs a green switch; the hub allows one reader
        me = threading.get_ident()
        with self._role:
            if self._reader is not None or self._stopping:
                if candidate and not self._stopping:
                    self._add_candidate(waiter)
                return False
            self._reader = me
            self._reader_until = None
            self._tenures += 1
            claimed = time.monotonic()
        waiter.reader = me
        waiter.nudge = self._nudge
        try:
            if handoffs.hook is not None:
                handoffs.hook("zmq.claimed")
            ready: list[int] = []
            while True:
                with self._io_lock:
                    if self._stopping:
                        return False
                    idle = self._read_all(ready)
                    if waiter.ready():
                        return True
                    if self._stopping:
                        return False  # it ran the loop's stop
                    now = time.monotonic()
                    timeout = self._next_timeout() if idle else 0.0
                    if deadline is not None:
                        if deadline <= now:
                            return True
                        if timeout is None or deadline - now < timeout:
                            timeout = deadline - now
                    self._reader_until = None if timeout is None else now + timeout
                    fds = list(self._watched.by_fd)
                    fds.append(self._nudge_rx)
                if handoffs.hook is not None:
                    handoffs.hook("zmq.reader-unlocked")
                ready = self._wait(fds, timeout)
                if self._nudge_rx in ready:
                    _drain(self._nudge_rx)
        finally:
            waiter.reader = waiter.nudge = None
            with self._role:
                self._reader = None
                if waiter:  # bool: it holds a delivery
                    # Likely back soon (a worker that handled a request, a
                    # caller's next call): the parked loop leaves the role
                    # free for it _LINGER before it reads in its place.
                    self._freed_at = now = time.monotonic()
                    if self._parked and now - claimed > _LINGER:
                        self._role.notify()  # its looks may be far apart by now
                else:
                    # Not back soon: a poller blocked on its mailbox reads
                    # next, or else the loop, at once.
                    candidates = self._candidates
                    while candidates:
                        key = next(iter(candidates))
                        if candidates.pop(key).offer_turn():
                            break
                    else:
                        self._freed_at = 0.0
                        if self._parked:
                            self._called_back = True
                            self._role.notify()
            if handoffs.hook is not None:
                handoffs.hook("zmq.released")  # the parked loop may come back meanwhile

    def _add_candidate(self, waiter: Any) -> None:
        """Offer ``waiter`` the role when it is free (last in line). The role's lock held."""
        waiting = self._candidates
        waiting.pop(id(waiter), None)
        waiting[id(waiter)] = waiter
        if len(waiting) > self._prune_at:
            # Only a release without a delivery takes candidates off: forget
            # the closed ones (listeners stopped since), and look again when
            # twice as many remain.
            for key in [k for k, each in waiting.items() if each.closed]:
                del waiting[key]
            self._prune_at = max(_CANDIDATES, 2 * len(waiting))

    def _nudge(self) -> None:
        """Wake the reading thread, unless it is this one (it looks before it waits)."""
        if self._reader != threading.get_ident():
            with contextlib.suppress(OSError):  # full: a wake-up is pending; closed: closing
                os.write(self._nudge_tx, b"\x00\x00\x00\x00\x00\x00\x00\x01")

    def listen_endpoint(self) -> str:
        """Bind the listening socket if it is not yet (any thread); its endpoint."""
        with self._bind_lock:
            if self._closed:
                raise exceptions.TransportClosed("the ZeroMQ node is closed")
            if self.endpoint is None:
                sock, self.endpoint = self._bind()
                self._adopt(sock)
                if hasattr(self.matchmaker, "own"):
                    self.matchmaker.own = self.endpoint
            return self.endpoint

    def _adopt(self, sock: Any) -> None:
        """Give the bound listening socket to the I/O loop, and wait until it has it."""
        ready = threading.Event()

        def adopt() -> None:
            self._router = sock
            self._watched.register(sock)
            ready.set()

        self.call_soon(adopt)
        if not ready.wait(10):
            raise exceptions.TransportBroken("the ZeroMQ I/O loop did not answer")

    def _socket(self, kind: int) -> Any:
        """A socket with what every socket of the node has: finite linger, heartbeats."""
        s = self.settings
        sock = self._ctx.socket(kind)
        sock.linger = int(s.linger * 1000)
        sock.sndhwm = sock.rcvhwm = _HWM
        sock.heartbeat_ivl = int(s.heartbeat_interval * 1000)
        sock.heartbeat_timeout = int(s.heartbeat_timeout * 1000)
        sock.heartbeat_ttl = int(s.heartbeat_timeout * 1000)
        return sock

    def _bind(self) -> tuple[Any, str]:
        s = self.settings
        sock = self._socket(zmq.ROUTER)
        sock.router_mandatory = 1
        if s.curve is not None:
            s.curve.configure_server(sock)
        try:
            for endpoint in s.static_binds:
                try:
                    sock.bind(endpoint.replace("tcp://localhost:", "tcp://127.0.0.1:"))
                    return sock, endpoint
                except zmq.ZMQError as exc:
                    LOG.debug("ZeroMQ: cannot listen on %s: %s", endpoint, exc)
            if s.static_binds:
                LOG.warning(
                    "ZeroMQ: every static endpoint (%s) is taken or not local; this process "
                    "listens on a port of its own, where replies reach it but other processes "
                    "cannot find its servers",
                    ", ".join(s.static_binds),
                )
            ports = list(range(s.min_port, s.max_port + 1 if s.max_port < 65536 else 65536))
            random.shuffle(ports)
            last: BaseException | None = None
            for port in ports[: s.port_retries]:
                try:
                    sock.bind(f"tcp://{s.bind_address}:{port}")
                    return sock, f"tcp://{s.host}:{port}"
                except zmq.ZMQError as exc:
                    last = exc
            raise exceptions.TransportBroken(
                f"ZeroMQ: no free port to listen on {s.bind_address} between "
                f"{s.min_port} and {s.max_port} after {s.port_retries} tries: {last}"
            ) from last
        except BaseException:
            sock.close(0)
            raise

    def subscribe(self, listener: Subscription, registrations: list[tuple[str, str]]) -> None:
        """Start delivering ``listener``'s slots to it; register ``(record, member)`` pairs."""
        with self._lock:
            for name in listener.slots:
                self._local.setdefault(name, []).append(listener)
                record, sep, pool = name.partition("\x1f")
                if sep:
                    self._pools.setdefault(record, set()).add(pool)
        for record, value in registrations:
            self.matchmaker.register(record, value)

    def unsubscribe(self, listener: Subscription, registrations: list[tuple[str, str]]) -> None:
        for record, value in registrations:
            self.matchmaker.unregister(record, value)
        with self._lock:
            for name in listener.slots:
                members = self._local.get(name, [])
                if listener in members:
                    members.remove(listener)
                if not members:
                    self._local.pop(name, None)
                    record, sep, pool = name.partition("\x1f")
                    if sep:
                        pools = self._pools.get(record, set())
                        pools.discard(pool)
                        if not pools:
                            self._pools.pop(record, None)

    def hand_over(self, listener: Subscription, deliveries: list[Delivery]) -> int:
        """Give ``deliveries`` to other local listeners of their slots; how many were taken."""
        taken = 0
        for delivery in deliveries:
            if self._deliver_to(delivery.slot, delivery.body, listener, delivery.reply_ref):
                taken += 1
        return taken

    def _deliver_to(
        self,
        name: str,
        body: bytes,
        exclude: Subscription | None = None,
        reply_ref: str | None = None,
    ) -> bool:
        with self._lock:
            members = [m for m in self._local.get(name, ()) if m is not exclude]
            if not members:
                return False
            turn = self._turns[name] = (self._turns.get(name, -1) + 1) % len(members)
            ordered = members[turn:] + members[:turn]
        for member in ordered:
            if member.deliver(body, name, reply_ref):
                return True
        return False

    def _deliver_all(self, name: str, body: bytes) -> bool:
        with self._lock:
            members = list(self._local.get(name, ()))
        delivered = [member.deliver(body, name) for member in members]
        return any(delivered)

    # -- closing --------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
        self.stop_io()
        self.finish_close()

    def stop_io(self) -> None:
        """Stop the I/O loop; it closes its sockets as it ends."""
        done = threading.Event()

        def stop() -> None:
            self._stopping = True
            with self._role:
                self._role.notify_all()  # a parked loop ends
            done.set()

        try:
            self.call_soon(stop)
        except exceptions.TransportClosed:
            pass
        done.wait(10)
        self._thread.join(10)

    def finish_close(self) -> None:
        """Release what outlives the loop: the name service, the wake-up sockets, the context."""
        with self._lock, self._wake_lock:
            self._closed = True
        self.matchmaker.close()
        self._wake_tx.close(0)
        self._wake_rx.close(0)
        os.close(self._nudge_rx)
        if self._nudge_tx != self._nudge_rx:
            os.close(self._nudge_tx)
        self._ctx.term()

    # -- the I/O loop ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._turn()
        except Exception:
            LOG.exception("ZeroMQ I/O loop failed; the node stops")
        finally:
            with self._io_lock:
                self._stopping = True
                self._shutdown()

    def _turn(self) -> None:
        if self._reader is not None:
            self._park()
            if self._stopping:
                return
        with self._io_lock:
            idle = self._read_all(self._ready)
            if self._stopping:
                return
            # Not idle: a socket may still be readable, and its descriptor
            # would not say so again; the next turn comes at once.
            timeout = self._next_timeout() if idle else 0.0
            self._sleep_until = None if timeout is None else time.monotonic() + timeout
            fds = list(self._watched.by_fd)
        if handoffs.hook is not None:
            handoffs.hook("zmq.unlocked")  # a sender may take the lock before the loop waits
        self._ready = self._wait(fds, timeout)

    def _park(self) -> None:
        """Wait while another thread holds the reading role: it reads, and runs the timers."""
        wait = _LINGER
        with self._role:
            while not (self._stopping or self._called_back):
                if self._reader is None:
                    # Let go with a delivery less than _LINGER ago: its reader
                    # is likely back (a worker between two requests, a caller
                    # between two calls). Else the loop reads in its place.
                    free_for = time.monotonic() - self._freed_at
                    if free_for >= _LINGER:
                        break
                    look = _LINGER - free_for
                else:
                    look = wait
                self._parked = True
                tenure = self._tenures
                if handoffs.hook is not None:
                    handoffs.hook("zmq.parked")
                self._role.wait(look)
                # The same reader all along: it releases with a notify (it read
                # longer than _LINGER), so look less often.
                wait = min(wait * 2, _PARKED_MAX if self._tenures == tenure else _LOOKS_MAX)
            self._called_back = False
            self._parked = False
        if handoffs.hook is not None:
            handoffs.hook("zmq.resumed")

    def _read_all(self, ready: list[int] | None = None) -> bool:
        """Read the sockets until none is readable; run commands and timers. Lock held.

        With ``ready`` (the descriptors the last wait found readable), only
        the sockets that may hold news are asked: those, the dirty ones
        (:attr:`Watched.dirty`), and the wake-up socket while a wake-up is
        pending. Any other socket's news is still signalled by its
        descriptor (nobody used the socket since it was found empty), so the
        next wait returns at once for it. Without, every socket is asked.
        Returns whether it got there (False: it stopped after :data:`_ROUNDS`).
        """
        watched = self._watched
        if ready is not None:
            for fd in ready:
                sock = watched.by_fd.get(fd)
                if sock is not None:
                    watched.dirty.add(sock)
            if self._wake_pending:
                watched.dirty.add(self._wake_rx)
        for _ in range(_ROUNDS):
            busy = False
            asked: Collection[Any]
            if ready is None:
                asked = watched.sockets
                watched.dirty.clear()
            else:
                asked, watched.dirty = watched.dirty, set()
            for sock in asked:
                if sock not in watched.by_sock:
                    continue  # closed by what an earlier socket's messages did
                if frames.readable(sock):
                    busy = True
                    if self._on(sock):
                        watched.dirty.add(sock)  # it stopped with more to read
            while self._commands:
                busy = True
                self._commands.popleft()()
            self.peers.check_timers()
            if self._stopping:
                return True
            if not (watched.dirty if ready is not None else busy):
                return True
        return False

    def _on(self, sock: Any) -> bool:
        """Read what ``sock`` holds; whether it may hold more (it stopped at a batch's end)."""
        if sock is self._router:
            return self._on_router()
        if sock in self.peers.by_socket:
            return self.peers.on_dealer(self.peers.by_socket[sock])
        if sock is self._wake_rx:
            self._drain_wake()
        elif sock is self._zap:
            self._on_zap()
        elif sock in self.peers.by_monitor:
            self.peers.on_monitor(self.peers.by_monitor[sock])
        return True  # seldom busy: asked once more

    def _wait(self, fds: list[int], timeout: float | None) -> list[int]:
        """Wait, without the lock, until a descriptor says something may have changed; those."""
        if self._green:
            return green.wait_readable(fds, timeout)  # the hub keeps running meanwhile
        ready = zmq.zmq_poll(
            [(fd, frames.POLLIN) for fd in fds], -1 if timeout is None else int(timeout * 1000) + 1
        )
        return [fd for fd, _ in ready]

    def _drain_wake(self) -> None:
        wake = self._wake_rx
        for _ in range(_BATCH):
            if not frames.readable(wake):
                break
            wake.recv(frames.NOBLOCK)
        # Only now: a command queued before this runs in this turn, one queued
        # after it sends a wake-up again (at worst one wake-up too many).
        with self._wake_lock:
            self._wake_pending = False

    def _next_timeout(self) -> float | None:
        if self._commands:
            return 0
        soonest = self.peers.next_timeout()
        if soonest is None:
            return None
        return max(0.0, soonest - time.monotonic()) + 0.001

    # -- receiving (ROUTER) -----------------------------------------------------

    def _on_router(self) -> bool:
        router = self._router
        for _ in range(_BATCH):
            if not frames.readable(router):
                return False
            first, parts = frames.recv_parts(router)
            identity = parts[0]
            if len(parts) != 3:
                self._refuse(identity, first, parts, f"{len(parts) - 1} frames, not 2")
                continue
            try:
                header = frames.decode_header(parts[1])
            except exceptions.MalformedMessage as exc:
                why = exc.reason if hasattr(exc, "reason") else str(exc)
                self._refuse(identity, first, parts, why)
                continue
            if header.answers:  # the call is over: its request need not be kept
                self.peers.answered(header.answers)
            if header.quiet:  # never sent twice; acknowledged only if refused
                status = self._accept(header, parts[2])
                if status != frames.OK:
                    self._ack(identity, frames.encode_ack(header.msg_id, status))
                continue
            seen = self.seen.get(header.msg_id)
            if seen is None:
                seen = self._accept(header, parts[2])
                self.seen.add(header.msg_id, seen)
            self._ack(identity, frames.encode_ack(header.msg_id, seen))
        return True

    def _accept(self, header: frames.Header, body: bytes) -> str:
        record = record_of(
            header.kind, header.exchange, header.topic, header.server or None, header.fanout
        )
        if header.kind == "notify":
            if header.pool == "*":
                with self._lock:
                    pools = list(self._pools.get(record, ()))
                hits = [self._deliver_to(slot(record, pool), body) for pool in pools]
                return frames.OK if any(hits) else frames.NOROUTE
            return (
                frames.OK if self._deliver_to(slot(record, header.pool), body) else frames.NOROUTE
            )
        if header.fanout:
            return frames.OK if self._deliver_all(record, body) else frames.NOROUTE
        # A call's request (quiet): its reply names it, so its caller's
        # process forgets it (the ``answers`` field).
        ref = header.msg_id if header.quiet and header.kind == "rpc" else None
        return frames.OK if self._deliver_to(record, body, None, ref) else frames.NOROUTE

    def _refuse(self, identity: bytes, first: Any, parts: list[bytes], why: str) -> None:
        try:
            peer = first.get("Peer-Address")
        except (zmq.ZMQError, AttributeError, KeyError):
            peer = "?"
        LOG.warning("ZeroMQ: dropping a malformed message from %s: %s", peer, why)
        msg_id = frames.msg_id_of(parts[1]) if len(parts) > 1 else None
        if msg_id is not None:
            self._ack(identity, frames.encode_ack(msg_id, frames.BAD, why))

    def _ack(self, identity: bytes, frame: bytes) -> None:
        self._watched.dirty.add(self._router)  # a write may take the news of its descriptor
        try:
            frames.send_parts(self._router, [identity, frame])
        except zmq.ZMQError as exc:  # EHOSTUNREACH: the sender is gone; it resends elsewhere
            LOG.debug("ZeroMQ: could not acknowledge to a peer that left: %s", exc)

    def _on_zap(self) -> None:
        assert self.settings.curve is not None
        for _ in range(_BATCH):
            try:
                request = self._zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            reply, refused = self.settings.curve.authorize(request)
            if refused is not None:
                LOG.warning("ZeroMQ: refused a CURVE connection from %s", refused)
            if reply:
                self._zap.send_multipart(reply)

    def _shutdown(self) -> None:
        self.peers.shutdown()
        while self._commands:
            try:
                self._commands.popleft()()
            except Exception:  # closing: report and go on
                LOG.exception("ZeroMQ: a command failed while closing")
        if self._router is not None:
            self._router.close()
        if self._zap is not None:
            self._zap.close(0)


def _pipe() -> tuple[int, int]:
    """A non-blocking descriptor pair that wakes a poller: one eventfd where there is one."""
    if hasattr(os, "eventfd"):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        return fd, fd
    rx, tx = os.pipe()
    os.set_blocking(rx, False)
    os.set_blocking(tx, False)
    return rx, tx


def _drain(fd: int) -> None:
    with contextlib.suppress(BlockingIOError, InterruptedError):
        os.read(fd, 4096)


_registry: dict[tuple[Any, ...], Node] = {}
_registry_lock = threading.Lock()


def acquire(
    settings: Settings,
    make_matchmaker: Callable[[], Matchmaker],
    *,
    build: Callable[..., Node] = Node,
    key: tuple[Any, ...] = (),
) -> Node:
    """The process's node for ``settings`` and ``key``, built on first use; counted.

    A node is ``build(settings, matchmaker, *key)``.
    """
    full = (os.getpid(), settings, build, *key)
    with _registry_lock:
        node = _registry.get(full)
        if node is None:
            node = _registry[full] = build(settings, make_matchmaker(), *key)
        node.users += 1
        return node


def forget(node: Node) -> bool:
    """One user less; whether that was the last (the caller then closes the node)."""
    with _registry_lock:
        node.users -= 1
        if node.users > 0:
            return False
        for key, known in list(_registry.items()):
            if known is node:
                del _registry[key]
    return True


def release(node: Node) -> None:
    """One user less; the last one closes the node."""
    if forget(node):
        node.close()
