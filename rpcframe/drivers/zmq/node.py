"""One process's ZeroMQ node: its listening socket, its connections and the loop that owns them.

Every driver of a process on the same URL and options shares one node
(:func:`acquire`, :func:`release`), so a process has one listening socket,
a ROUTER bound once (lazily: a process that only sends never listens), and
one connection, a DEALER, to each peer process it sends to, whatever the
topics. ZeroMQ sockets belong to one thread: only the node's I/O loop (a
thread named ``rpcframe-zmq-io``; a green thread in an eventlet-patched
process) touches them. Other threads hand it work through a queue and a
wake-up socket.

What the loop does (the state of each message is a :class:`Outgoing`):

* sending: a message goes to its first candidate process; once that
  connection's handshake is done it is written, then waits for the
  receiver's acknowledgement. ``noroute`` (nothing there listens on it:
  a stale record) or no connection within ``rpc_zmq_connect_timeout``
  moves it to the next candidate. No acknowledgement within
  ``rpc_ack_timeout_base`` sends the same id again (the receiver drops a
  copy it has, :mod:`.seen`); after the attempts, the send fails.
* calls: a call request's sender goes on as soon as it is written (its
  reply proves delivery), and a call request is never sent twice (calls
  run at most once). Its acknowledgement is still awaited: ``noroute``
  moves it to the next candidate; when none is left, or its connection is
  lost before or after the acknowledgement, the node puts an error reply
  in the caller's inbox at once rather than letting the call time out.
* receiving: a delivery is put into the mailbox of a local listener of its
  address, and acknowledged ``ok``; ``noroute`` when there is none;
  malformed frames are logged and refused (``bad``), and the loop goes on.
* peers: ``ROUTER_MANDATORY`` makes an acknowledgement to a peer that is
  gone an error, not a silent drop; ``IMMEDIATE`` keeps messages off
  connections that are not up; ZeroMQ heartbeats notice a dead peer on an
  idle connection; a lost connection fails the messages waiting on it over to
  the next candidate, and answers the calls it carried that are still
  waiting with an error reply, at once, rather than letting them time out.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils import monitor as zmq_monitor

from rpcframe import exceptions, green, wire
from rpcframe.drivers.zmq import frames
from rpcframe.drivers.zmq.listener import Delivery, ZmqListener
from rpcframe.drivers.zmq.matchmaker import Matchmaker, split_member
from rpcframe.drivers.zmq.routing import record_of, slot
from rpcframe.drivers.zmq.security import ZAP_ENDPOINT, Curve
from rpcframe.drivers.zmq.seen import SeenIds

__all__ = ["Node", "Outgoing", "Settings", "acquire", "release"]

LOG = logging.getLogger(__name__)

#: Messages read from one socket before the loop looks at the others.
_BATCH = 256
#: Received ids remembered at most, to drop repeated copies (flat memory).
_SEEN = 16_384
#: Acknowledged call requests kept per peer, to answer them if it dies.
_CALLS_KEPT = 1024
_HWM = 100_000
_MONITORED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """What a node is built from; drivers with equal settings share a node."""

    bind_address: str
    host: str
    min_port: int
    max_port: int
    port_retries: int
    static_binds: tuple[str, ...]
    linger: float
    heartbeat_interval: float
    heartbeat_timeout: float
    connect_timeout: float
    ack_timeout: float
    copy_window: float  # how long a sender may send a copy of a message
    curve: Curve | None
    matchmaker_key: tuple[Any, ...]


class Outgoing:
    """One message on its way to one process (of several candidates). I/O loop only."""

    __slots__ = (
        "msg_id", "header", "body", "candidates", "record", "attempts", "deadline",
        "ack_deadline", "peer", "written", "is_call", "expiry", "status", "error",
        "on_done", "noroutes", "done", "reason", "released",
    )  # fmt: skip

    def __init__(
        self,
        header: frames.Header,
        body: bytes,
        candidates: list[str],
        record: str,
        attempts: int,
        deadline: float,
        is_call: bool,
        expiry: float | None,
        on_done: Callable[[Outgoing], None],
    ) -> None:
        self.msg_id = header.msg_id
        self.header = frames.encode_header(header)
        self.body = body
        self.candidates = candidates  # members; the first is the one being tried
        self.record = record
        self.attempts = attempts
        self.deadline = deadline
        self.ack_deadline = 0.0
        self.peer: _Peer | None = None
        self.written = False
        self.is_call = is_call
        self.expiry = expiry
        self.status: str | None = None  # frames.OK or frames.NOROUTE once done
        self.error: BaseException | None = None
        self.on_done = on_done
        self.noroutes = 0
        self.done = False
        self.reason = ""  # why the last candidate did not take it
        self.released = False  # a call whose sender went on once it was written


class _Peer:
    """The connection to one peer process's listening socket. I/O loop only."""

    def __init__(self, endpoint: str, sock: Any, monitor: Any, connect_by: float) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.monitor = monitor
        self.up = False
        self.connect_by = connect_by
        self.waiting: collections.deque[Outgoing] = collections.deque()
        self.inflight: dict[str, Outgoing] = {}
        self.calls: collections.OrderedDict[str, tuple[bytes, float]] = collections.OrderedDict()


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
        self._local: dict[str, list[ZmqListener]] = {}
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
        self._peers: dict[str, _Peer] = {}
        self._by_socket: dict[Any, _Peer] = {}
        self._by_monitor: dict[Any, _Peer] = {}
        self.seen = SeenIds(settings.copy_window, _SEEN)
        self._poller = zmq.Poller()
        self._poller.register(self._wake_rx, zmq.POLLIN)
        self._stopping = False
        if settings.curve is not None:
            self._zap = self._ctx.socket(zmq.REP)
            self._zap.linger = 0
            self._zap.bind(ZAP_ENDPOINT)
            self._poller.register(self._zap, zmq.POLLIN)
        self._thread = threading.Thread(target=self._run, name="rpcframe-zmq-io", daemon=True)
        self._thread.start()

    # -- any thread -----------------------------------------------------------

    def call_soon(self, command: Callable[[], None]) -> None:
        """Run ``command`` on the I/O loop."""
        self._commands.append(command)
        with self._wake_lock:
            if self._closed:
                raise exceptions.TransportClosed("the ZeroMQ node is closed")
            if self._wake_pending:
                return  # the loop has a wake-up to read, and runs every command after it
            self._wake_pending = True
            try:
                self._wake_tx.send(b"", zmq.NOBLOCK)
            except zmq.Again:
                pass  # wake-ups are pending already

    def listen_endpoint(self) -> str:
        """Bind the listening socket if it is not yet (any thread); its endpoint."""
        with self._bind_lock:
            if self._closed:
                raise exceptions.TransportClosed("the ZeroMQ node is closed")
            if self.endpoint is None:
                sock, self.endpoint = self._bind()
                ready = threading.Event()

                def adopt() -> None:
                    self._router = sock
                    self._poller.register(sock, zmq.POLLIN)
                    ready.set()

                self.call_soon(adopt)
                if not ready.wait(10):
                    raise exceptions.TransportBroken("the ZeroMQ I/O loop did not answer")
                if hasattr(self.matchmaker, "own"):
                    self.matchmaker.own = self.endpoint
            return self.endpoint

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

    def subscribe(self, listener: ZmqListener, registrations: list[tuple[str, str]]) -> None:
        """Start delivering ``listener``'s slots to it; register ``(record, member)`` pairs."""
        with self._lock:
            for name in listener.slots:
                self._local.setdefault(name, []).append(listener)
                record, sep, pool = name.partition("\x1f")
                if sep:
                    self._pools.setdefault(record, set()).add(pool)
        for record, value in registrations:
            self.matchmaker.register(record, value)

    def unsubscribe(self, listener: ZmqListener, registrations: list[tuple[str, str]]) -> None:
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

    def hand_over(self, listener: ZmqListener, deliveries: list[Delivery]) -> int:
        """Give ``deliveries`` to other local listeners of their slots; how many were taken."""
        taken = 0
        for delivery in deliveries:
            if self._deliver_to(delivery.slot, delivery.body, exclude=listener):
                taken += 1
        return taken

    def _deliver_to(self, name: str, body: bytes, exclude: ZmqListener | None = None) -> bool:
        with self._lock:
            members = [m for m in self._local.get(name, ()) if m is not exclude]
            if not members:
                return False
            turn = self._turns[name] = (self._turns.get(name, -1) + 1) % len(members)
            ordered = members[turn:] + members[:turn]
        return any(member.deliver(body, name) for member in ordered)

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
        done = threading.Event()

        def stop() -> None:
            self._stopping = True
            done.set()

        try:
            self.call_soon(stop)
        except exceptions.TransportClosed:
            pass
        done.wait(10)
        self._thread.join(10)
        with self._lock, self._wake_lock:
            self._closed = True
        self.matchmaker.close()
        self._wake_tx.close(0)
        self._wake_rx.close(0)
        self._ctx.term()

    # -- the I/O loop ---------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                self._turn()
        except Exception:
            LOG.exception("ZeroMQ I/O loop failed; the node stops")
        finally:
            self._shutdown()

    def _turn(self) -> None:
        timeout = self._next_timeout()
        ready = self._wait(timeout)
        for sock in ready:
            if sock is self._wake_rx:
                self._drain_wake()
            elif sock is self._router:
                self._on_router()
            elif sock is self._zap:
                self._on_zap()
            elif sock in self._by_socket:
                self._on_dealer(self._by_socket[sock])
            elif sock in self._by_monitor:
                self._on_monitor(self._by_monitor[sock])
        while self._commands:
            self._commands.popleft()()
        self._check_timers()

    def _wait(self, timeout: float | None) -> list[Any]:
        poller = self._poller
        if not green.patched():
            return [s for s, _ in poller.poll(None if timeout is None else int(timeout * 1000) + 1)]
        # The hub must keep running: ask without waiting, then wait on the
        # sockets' descriptors through the hub, then ask again.
        ready = [s for s, _ in poller.poll(0)]
        if ready or timeout == 0:
            return ready
        fds = [sock.getsockopt(zmq.FD) for sock, _ in poller.sockets]
        green.wait_readable(fds, timeout)
        return [s for s, _ in poller.poll(0)]

    def _drain_wake(self) -> None:
        for _ in range(_BATCH):
            try:
                self._wake_rx.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
        # Only now: a command queued before this runs in this turn, one queued
        # after it sends a wake-up again (at worst one wake-up too many).
        with self._wake_lock:
            self._wake_pending = False

    def _next_timeout(self) -> float | None:
        if self._commands:
            return 0
        soonest = None
        for peer in self._peers.values():
            if not peer.up and peer.waiting:
                soonest = peer.connect_by if soonest is None else min(soonest, peer.connect_by)
            for outgoing in (*peer.waiting, *peer.inflight.values()):
                due = outgoing.deadline
                if outgoing.written and outgoing.ack_deadline:
                    due = min(due, outgoing.ack_deadline)
                soonest = due if soonest is None else min(soonest, due)
        if soonest is None:
            return None
        return max(0.0, soonest - time.monotonic()) + 0.001

    # -- receiving (ROUTER) -----------------------------------------------------

    def _on_router(self) -> None:
        router = self._router
        for _ in range(_BATCH):
            try:
                parts = router.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            identity = parts[0].bytes
            if len(parts) != 3:
                self._refuse(identity, parts, f"{len(parts) - 1} frames, not 2")
                continue
            try:
                header = frames.decode_header(parts[1].bytes)
            except exceptions.MalformedMessage as exc:
                self._refuse(identity, parts, exc.reason if hasattr(exc, "reason") else str(exc))
                continue
            status = self.seen.get(header.msg_id)
            if status is None:
                status = self._accept(header, parts[2].bytes)
                self.seen.add(header.msg_id, status)
            self._ack(identity, frames.encode_ack(header.msg_id, status))

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
        return frames.OK if self._deliver_to(record, body) else frames.NOROUTE

    def _refuse(self, identity: bytes, parts: list[Any], why: str) -> None:
        try:
            peer = parts[-1].get("Peer-Address")
        except (zmq.ZMQError, AttributeError, KeyError):
            peer = "?"
        LOG.warning("ZeroMQ: dropping a malformed message from %s: %s", peer, why)
        msg_id = frames.msg_id_of(parts[1].bytes) if len(parts) > 1 else None
        if msg_id is not None:
            self._ack(identity, frames.encode_ack(msg_id, frames.BAD, why))

    def _ack(self, identity: bytes, frame: bytes) -> None:
        try:
            self._router.send_multipart([identity, frame], zmq.NOBLOCK)
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

    # -- sending (DEALERs) ------------------------------------------------------

    def start(self, outgoing: Outgoing) -> None:
        """Send ``outgoing`` to its first reachable candidate. I/O loop only."""
        while outgoing.candidates:
            _, endpoint = split_member(outgoing.candidates[0])
            peer = self._peer(endpoint)
            outgoing.peer = peer
            if peer.up:
                self._write(peer, outgoing)
            else:
                peer.waiting.append(outgoing)
            return
        self._exhausted(outgoing)

    def _peer(self, endpoint: str) -> _Peer:
        peer = self._peers.get(endpoint)
        if peer is not None:
            return peer
        s = self.settings
        sock = self._socket(zmq.DEALER)
        sock.immediate = 1
        sock.reconnect_ivl = 100
        if s.curve is not None:
            s.curve.configure_client(sock)
        monitor = sock.get_monitor_socket(_MONITORED)
        sock.connect(endpoint)
        peer = _Peer(endpoint, sock, monitor, time.monotonic() + s.connect_timeout)
        self._peers[endpoint] = peer
        self._by_socket[sock] = peer
        self._by_monitor[monitor] = peer
        self._poller.register(sock, zmq.POLLIN)
        self._poller.register(monitor, zmq.POLLIN)
        return peer

    def _write(self, peer: _Peer, outgoing: Outgoing) -> None:
        try:
            # Copied, never zero-copy: pyzmq frees zero-copy buffers from a thread
            # of its own that blocks in a native recv, which in an eventlet-patched
            # process is a green thread and would stop the hub.
            peer.sock.send_multipart([outgoing.header, outgoing.body], zmq.NOBLOCK)
        except zmq.Again:
            peer.waiting.append(outgoing)  # over the high-water mark: try on the next turn
            return
        outgoing.written = True
        peer.inflight[outgoing.msg_id] = outgoing
        if outgoing.is_call:
            # Never sent again (calls run at most once), so no acknowledgement
            # deadline; its caller waits for the reply, not for the acknowledgement.
            self._release(outgoing)
        else:
            outgoing.ack_deadline = time.monotonic() + self.settings.ack_timeout

    def _release(self, outgoing: Outgoing) -> None:
        """Let a call's sender go on: it is written, and its reply proves delivery."""
        if not outgoing.released:
            outgoing.released = True
            outgoing.status = frames.OK
            outgoing.on_done(outgoing)

    def _on_dealer(self, peer: _Peer) -> None:
        for _ in range(_BATCH):
            try:
                frame = peer.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                ack = frames.decode_ack(frame)
            except exceptions.MalformedMessage as exc:
                LOG.warning(
                    "ZeroMQ: dropping a malformed acknowledgement from %s: %s", peer.endpoint, exc
                )
                continue
            outgoing = peer.inflight.pop(ack.msg_id, None)
            if outgoing is None:
                continue  # an acknowledgement of a copy sent again
            if ack.status == frames.OK:
                if outgoing.is_call and outgoing.expiry:
                    peer.calls[outgoing.msg_id] = (
                        outgoing.body,
                        time.monotonic() + outgoing.expiry,
                    )
                    if len(peer.calls) > _CALLS_KEPT:
                        peer.calls.popitem(last=False)
                self._finish(outgoing, frames.OK)
            elif ack.status == frames.NOROUTE:
                outgoing.noroutes += 1
                outgoing.reason = f"nothing listens on it at {peer.endpoint} any more"
                self.matchmaker.forget(outgoing.record, outgoing.candidates[0])
                self._next_candidate(outgoing)
            else:
                self._finish(
                    outgoing,
                    error=exceptions.TransportBroken(
                        f"the process at {peer.endpoint} refused the message: {ack.detail}"
                    ),
                )
        if peer.waiting and peer.up:
            self._flush(peer)

    def _flush(self, peer: _Peer) -> None:
        waiting, peer.waiting = peer.waiting, collections.deque()
        for outgoing in waiting:
            if not outgoing.done:
                self._write(peer, outgoing)

    def _next_candidate(self, outgoing: Outgoing) -> None:
        outgoing.candidates.pop(0)
        outgoing.written = False
        outgoing.peer = None
        self.start(outgoing)

    def _exhausted(self, outgoing: Outgoing) -> None:
        if outgoing.error is None and outgoing.noroutes:
            self._finish(outgoing, frames.NOROUTE)
        else:
            self._finish(
                outgoing,
                error=outgoing.error
                or exceptions.MessageDeliveryFailure("no process of the address could be reached"),
            )

    def _finish(
        self, outgoing: Outgoing, status: str | None = None, error: BaseException | None = None
    ) -> None:
        if outgoing.done:
            return
        outgoing.done = True
        if outgoing.released:
            # Its sender went on; a call that did not get there is answered
            # with an error reply, so that its caller need not time out.
            if error is not None or status != frames.OK:
                self._answer_call(outgoing.body, str(error) if error else outgoing.reason)
            outgoing.peer = None
            outgoing.body = b""
            return
        outgoing.status = status
        outgoing.error = error
        outgoing.peer = None
        outgoing.body = b""
        outgoing.on_done(outgoing)

    def _on_monitor(self, peer: _Peer) -> None:
        for _ in range(_BATCH):
            try:
                event = zmq_monitor.recv_monitor_message(peer.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                peer.up = True
                self._flush(peer)
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._peer_down(
                    peer,
                    f"the process at {peer.endpoint} refused this process's CURVE key "
                    "(it is not among its authorized keys)",
                    auth=True,
                )
                return
            elif kind in (
                zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL,
            ):
                secure = self.settings.curve is not None
                self._peer_down(
                    peer,
                    f"the handshake with {peer.endpoint} failed"
                    + (
                        " (CURVE: is zmq_curve_server_key_file the same on both sides?)"
                        if secure
                        else " (is it a ZeroMQ peer with the same security?)"
                    ),
                    auth=secure,
                )
                return
            elif kind == zmq.EVENT_CONNECT_RETRIED and not peer.up:
                self._peer_down(peer, f"the connection to {peer.endpoint} was refused")
                return
            elif kind == zmq.EVENT_DISCONNECTED:
                self._peer_down(
                    peer,
                    f"the connection to {peer.endpoint} was lost (the process exited, or "
                    "stopped answering heartbeats)",
                )
                return

    def _peer_down(self, peer: _Peer, reason: str, auth: bool = False) -> None:
        LOG.warning("ZeroMQ: %s", reason)
        self._drop_peer(peer)
        for outgoing in (*peer.waiting, *peer.inflight.values()):
            if outgoing.done:
                continue
            if auth:
                outgoing.peer = None
                self._finish(outgoing, error=exceptions.AuthenticationError(reason))
            elif outgoing.written and outgoing.is_call:
                # It may have reached the server: a call runs at most once.
                outgoing.peer = None
                self._finish(
                    outgoing,
                    error=exceptions.MessageDeliveryFailure(
                        f"the server went away during the call: {reason}"
                    ),
                )
            else:
                # Never written: that process is not there; the next one may be.
                self.matchmaker.forget(outgoing.record, outgoing.candidates[0])
                outgoing.noroutes += 1
                outgoing.reason = reason
                self._next_candidate(outgoing)
        self._fail_calls(peer, reason)

    def _drop_peer(self, peer: _Peer) -> None:
        self._peers.pop(peer.endpoint, None)
        self._by_socket.pop(peer.sock, None)
        self._by_monitor.pop(peer.monitor, None)
        self._poller.unregister(peer.sock)
        self._poller.unregister(peer.monitor)
        peer.sock.disable_monitor()
        peer.monitor.close(0)
        peer.sock.close(0)

    def _fail_calls(self, peer: _Peer, reason: str) -> None:
        """Answer the calls ``peer`` was running, whose callers are still waiting, with an error."""
        now = time.monotonic()
        for body, expires in peer.calls.values():
            if expires >= now:
                self._answer_call(body, f"the server went away during the call: {reason}")
        peer.calls.clear()

    def _answer_call(self, body: bytes, reason: str) -> None:
        """Put an error reply, ``ConnectionError(reason)``, in the local inbox of a call."""
        try:
            request = wire.parse_request(body)
        except exceptions.MalformedMessage:
            return
        if not (request.msg_id and request.reply_q):
            return
        try:
            raise ConnectionError(reason)
        except ConnectionError:
            failure = wire.serialize_remote_exception()
        reply = wire.encode_reply(request.msg_id, failure=failure)
        self._deliver_to(record_of("reply", "", request.reply_q, None, False), reply)

    def _check_timers(self) -> None:
        now = time.monotonic()
        for peer in list(self._peers.values()):
            if not peer.up and peer.waiting and now >= peer.connect_by:
                self._peer_down(
                    peer,
                    f"no connection to {peer.endpoint} within {self.settings.connect_timeout} s",
                )
                continue
            for outgoing in (*peer.waiting, *peer.inflight.values()):
                if outgoing.done:
                    continue
                if now >= outgoing.deadline:
                    peer.inflight.pop(outgoing.msg_id, None)
                    if outgoing in peer.waiting:
                        peer.waiting.remove(outgoing)
                    if outgoing.released:
                        self._finish(outgoing, frames.OK)  # its caller times out by itself
                        continue
                    self._finish(
                        outgoing,
                        error=exceptions.MessagingTimeout(
                            f"no acknowledgement from {peer.endpoint} before the send's deadline"
                        ),
                    )
                elif outgoing.written and outgoing.ack_deadline and now >= outgoing.ack_deadline:
                    peer.inflight.pop(outgoing.msg_id, None)
                    if outgoing.attempts > 0:
                        outgoing.attempts -= 1
                        LOG.info("ZeroMQ: no acknowledgement from %s; sending again", peer.endpoint)
                        self._write(peer, outgoing)
                    else:
                        outgoing.error = exceptions.MessageDeliveryFailure(
                            f"{peer.endpoint} did not acknowledge the message"
                        )
                        self._next_candidate(outgoing)
        if self._peers:
            for peer in list(self._peers.values()):
                if peer.up and peer.waiting:
                    self._flush(peer)

    def _shutdown(self) -> None:
        closed = exceptions.TransportClosed(
            "the ZeroMQ transport closed before the message was sent"
        )
        for peer in list(self._peers.values()):
            for outgoing in (*peer.waiting, *peer.inflight.values()):
                outgoing.peer = None
                self._finish(outgoing, error=closed)
            self._drop_peer(peer)
        while self._commands:
            try:
                self._commands.popleft()()
            except Exception:  # closing: report and go on
                LOG.exception("ZeroMQ: a command failed while closing")
        if self._router is not None:
            self._router.close()
        if self._zap is not None:
            self._zap.close(0)


_registry: dict[tuple[Any, ...], Node] = {}
_registry_lock = threading.Lock()


def acquire(settings: Settings, make_matchmaker: Callable[[], Matchmaker]) -> Node:
    """The process's node for ``settings``, created on first use; counted."""
    key = (os.getpid(), settings)
    with _registry_lock:
        node = _registry.get(key)
        if node is None:
            node = _registry[key] = Node(settings, make_matchmaker())
        node.users += 1
        return node


def release(node: Node) -> None:
    """One user less; the last one closes the node."""
    with _registry_lock:
        node.users -= 1
        if node.users > 0:
            return
        for key, known in list(_registry.items()):
            if known is node:
                del _registry[key]
    node.close()
