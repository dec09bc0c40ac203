"""A node's connections to the processes it sends to, and the messages on their way.

:class:`Peers` owns one DEALER (a :class:`Peer`) per process this one sends
to, and the state of each message on its way (an :class:`Outgoing`). It is
the node's (:mod:`.node`): it is only called under the node's I/O lock
(by the I/O loop, or by a thread sending), so nothing here locks.

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
* peers: ``ROUTER_MANDATORY`` makes an acknowledgement to a peer that is
  gone an error, not a silent drop; ``IMMEDIATE`` keeps messages off
  connections that are not up; ZeroMQ heartbeats notice a dead peer on an
  idle connection; a lost connection fails the messages waiting on it over to
  the next candidate, and answers the calls it carried that are still
  waiting with an error reply, at once, rather than letting them time out.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils import monitor as zmq_monitor

from rpcframe import exceptions, wire
from rpcframe.drivers import base
from rpcframe.drivers.zmq import frames
from rpcframe.drivers.zmq.matchmaker import Matchmaker, split_member
from rpcframe.drivers.zmq.routing import record_of
from rpcframe.drivers.zmq.settings import Settings

__all__ = ["Outgoing", "Peer", "Peers"]

LOG = logging.getLogger(__name__)

#: Messages read from one socket before the loop looks at the others.
_BATCH = 256
#: Quiet messages kept per peer after they were written (to move a call to
#: the next candidate on a refusal, or to answer it if the peer dies).
_QUIET_KEPT = 1024
_MONITORED = (
    zmq.EVENT_HANDSHAKE_SUCCEEDED
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_DISCONNECTED
    | zmq.EVENT_CONNECT_RETRIED
)


class Outgoing:
    """One message on its way to one process (of several candidates). Under the I/O lock."""

    __slots__ = (
        "msg_id", "header", "body", "candidates", "record", "attempts", "deadline",
        "ack_deadline", "peer", "written", "is_call", "is_reply", "quiet", "expiry", "status",
        "error", "on_done", "noroutes", "done", "reason", "released",
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
        self.quiet = header.quiet
        self.header = frames.encode_header(header)
        self.body = body
        self.candidates = candidates  # members; the first is the one being tried
        self.record = record
        self.attempts = attempts
        self.deadline = deadline
        self.ack_deadline = 0.0
        self.peer: Peer | None = None
        self.written = False
        self.is_call = is_call
        self.is_reply = header.kind == base.REPLY
        self.expiry = expiry
        self.status: str | None = None  # frames.OK or frames.NOROUTE once done
        self.error: BaseException | None = None
        self.on_done = on_done
        self.noroutes = 0
        self.done = False
        self.reason = ""  # why the last candidate did not take it
        self.released = False  # a quiet message whose sender went on once it was written


class Peer:
    """The connection to one peer process's listening socket. Under the I/O lock."""

    def __init__(self, endpoint: str, sock: Any, monitor: Any, connect_by: float) -> None:
        self.endpoint = endpoint
        self.sock = sock
        self.monitor = monitor
        self.up = False
        self.connect_by = connect_by
        self.waiting: collections.deque[Outgoing] = collections.deque()
        self.inflight: dict[str, Outgoing] = {}
        # Quiet messages written to it, by id: (message, until when it is kept).
        self.quiet: collections.OrderedDict[str, tuple[Outgoing, float]] = collections.OrderedDict()


class Peers:
    """The node's DEALERs by endpoint, socket and monitor socket. Under the I/O lock."""

    def __init__(
        self,
        settings: Settings,
        make_socket: Callable[[int], Any],
        watched: Any,
        matchmaker: Matchmaker,
        deliver: Callable[[str, bytes], bool],
    ) -> None:
        self.settings = settings
        self.matchmaker = matchmaker
        self._socket = make_socket
        self._watched = watched  # the node's Watched: the sockets its I/O loop waits on
        self._deliver_to = deliver  # to a local listener: an error reply to a local caller
        self.by_endpoint: dict[str, Peer] = {}
        self.by_socket: dict[Any, Peer] = {}
        self.by_monitor: dict[Any, Peer] = {}
        # The peer of each call request kept (Peer.quiet), until its reply answers it.
        self._calls: dict[str, Peer] = {}

    def start(self, outgoing: Outgoing) -> None:
        """Send ``outgoing`` to its first reachable candidate."""
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

    def _peer(self, endpoint: str) -> Peer:
        peer = self.by_endpoint.get(endpoint)
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
        peer = Peer(endpoint, sock, monitor, time.monotonic() + s.connect_timeout)
        self.by_endpoint[endpoint] = peer
        self.by_socket[sock] = peer
        self.by_monitor[monitor] = peer
        self._watched.register(sock)
        self._watched.register(monitor)
        return peer

    def _write(self, peer: Peer, outgoing: Outgoing) -> None:
        self._watched.dirty.add(peer.sock)  # a write may take the news of its descriptor
        try:
            frames.send_parts(peer.sock, [outgoing.header, outgoing.body])
        except zmq.Again:
            peer.waiting.append(outgoing)  # over the high-water mark: try on the next turn
            return
        outgoing.written = True
        if outgoing.quiet:
            # Never sent again and acknowledged only if refused: kept a while
            # for that refusal (or the peer's death), its sender goes on now.
            now = time.monotonic()
            keep = peer.quiet
            keep[outgoing.msg_id] = (outgoing, now + (outgoing.expiry or self.settings.ack_timeout))
            if outgoing.is_call:
                self._calls[outgoing.msg_id] = peer
            while keep and (len(keep) > _QUIET_KEPT or next(iter(keep.values()))[1] < now):
                self._calls.pop(keep.popitem(last=False)[0], None)
            self._release(outgoing)
        else:
            peer.inflight[outgoing.msg_id] = outgoing
            outgoing.ack_deadline = time.monotonic() + self.settings.ack_timeout

    def answered(self, msg_id: str) -> None:
        """A reply answered the call request ``msg_id``: it need not be kept any more."""
        peer = self._calls.pop(msg_id, None)
        if peer is not None:
            peer.quiet.pop(msg_id, None)

    def _release(self, outgoing: Outgoing) -> None:
        """Let a quiet message's sender go on: it is written (a call's reply proves delivery)."""
        if not outgoing.released:
            outgoing.released = True
            outgoing.status = frames.OK
            outgoing.on_done(outgoing)

    def on_dealer(self, peer: Peer) -> bool:
        """Read the acknowledgements on ``peer``'s connection; whether more may wait."""
        more = self._take_acks(peer, _BATCH)
        if peer.waiting and peer.up:
            self._flush(peer)
        return more

    def _take_acks(self, peer: Peer, most: int) -> bool:
        """Read up to ``most`` acknowledgements the peer's connection holds; whether it
        stopped at ``most``."""
        sock = peer.sock
        for _ in range(most):
            if not frames.readable(sock):
                return False
            frame = sock.recv(frames.NOBLOCK)
            try:
                ack = frames.decode_ack(frame)
            except exceptions.MalformedMessage as exc:
                LOG.warning(
                    "ZeroMQ: dropping a malformed acknowledgement from %s: %s", peer.endpoint, exc
                )
                continue
            outgoing = peer.inflight.pop(ack.msg_id, None)
            if outgoing is None:
                kept = peer.quiet.pop(ack.msg_id, None)
                self._calls.pop(ack.msg_id, None)
                if kept is None:
                    continue  # an acknowledgement of a copy sent again, or of one forgotten
                outgoing = kept[0]
            if ack.status == frames.OK:
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
        return True

    def _flush(self, peer: Peer) -> None:
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
                why = str(error) if error else outgoing.reason
                if outgoing.is_call:
                    self._answer_call(outgoing.body, why)
                elif outgoing.is_reply:
                    LOG.info("ZeroMQ: a reply (or a call's heartbeat) was dropped: %s", why)
            outgoing.peer = None
            outgoing.body = b""
            return
        outgoing.status = status
        outgoing.error = error
        outgoing.peer = None
        outgoing.body = b""
        outgoing.on_done(outgoing)

    def on_monitor(self, peer: Peer) -> None:
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

    def _peer_down(self, peer: Peer, reason: str, auth: bool = False) -> None:
        # What it acknowledged before it went is delivered: the news of the
        # loss (its monitor's) may be read before those acknowledgements.
        try:
            self._take_acks(peer, _QUIET_KEPT)
        except zmq.ZMQError as exc:
            LOG.debug("ZeroMQ: reading what %s acknowledged before it went: %s", peer.endpoint, exc)
        # A peer that leaves with nothing of ours on the way (a client that
        # exited after its replies) is ordinary: worth a warning only when
        # messages or calls had to go elsewhere or fail.
        now = time.monotonic()
        affected = any(not o.done for o in (*peer.waiting, *peer.inflight.values())) or any(
            o.is_call and expires >= now for o, expires in peer.quiet.values()
        )
        LOG.log(logging.WARNING if affected or auth else logging.INFO, "ZeroMQ: %s", reason)
        self._drop_peer(peer)
        for outgoing in (*peer.waiting, *peer.inflight.values()):
            if outgoing.done:
                continue
            if auth:
                outgoing.peer = None
                self._finish(outgoing, error=exceptions.AuthenticationError(reason))
            else:
                # Never written: that process is not there; the next one may be.
                self.matchmaker.forget(outgoing.record, outgoing.candidates[0])
                outgoing.noroutes += 1
                outgoing.reason = reason
                self._next_candidate(outgoing)
        self._fail_calls(peer, reason)

    def _drop_peer(self, peer: Peer) -> None:
        self.by_endpoint.pop(peer.endpoint, None)
        self.by_socket.pop(peer.sock, None)
        self.by_monitor.pop(peer.monitor, None)
        self._watched.unregister(peer.sock)
        self._watched.unregister(peer.monitor)
        peer.sock.disable_monitor()
        peer.monitor.close(0)
        peer.sock.close(0)

    def _fail_calls(self, peer: Peer, reason: str) -> None:
        """Answer the calls ``peer`` was running, whose callers are still waiting, with an error.

        A call may have reached the server: it runs at most once, so it is
        not sent elsewhere.
        """
        now = time.monotonic()
        for outgoing, expires in peer.quiet.values():
            self._calls.pop(outgoing.msg_id, None)
            if outgoing.is_call and expires >= now:
                self._answer_call(outgoing.body, f"the server went away during the call: {reason}")
        peer.quiet.clear()

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

    def check_timers(self) -> None:
        now = time.monotonic()
        for peer in list(self.by_endpoint.values()):
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
        if self.by_endpoint:
            for peer in list(self.by_endpoint.values()):
                if peer.up and peer.waiting:
                    self._flush(peer)

    def next_timeout(self) -> float | None:
        """When :meth:`check_timers` has something to do next (monotonic), if ever."""
        soonest = None
        for peer in self.by_endpoint.values():
            if not peer.up and peer.waiting:
                soonest = peer.connect_by if soonest is None else min(soonest, peer.connect_by)
            for outgoing in (*peer.waiting, *peer.inflight.values()):
                due = outgoing.deadline
                if outgoing.written and outgoing.ack_deadline:
                    due = min(due, outgoing.ack_deadline)
                soonest = due if soonest is None else min(soonest, due)
        return soonest

    def shutdown(self) -> None:
        """Fail every message on its way and close every connection."""
        closed = exceptions.TransportClosed(
            "the ZeroMQ transport closed before the message was sent"
        )
        for peer in list(self.by_endpoint.values()):
            for outgoing in (*peer.waiting, *peer.inflight.values()):
                outgoing.peer = None
                self._finish(outgoing, error=closed)
            self._drop_peer(peer)
