"""The server's side of announced calls and streams (see :mod:`rpcframe.wire.calls`).

A request that asks to be announced gets a :class:`Control`: the server
watches a fresh control id on its own transport's inbox, tells the caller
where it is (the ``started`` message), and from then on the caller's cancel
reaches the endpoint's :class:`~rpcframe.rpc.current.Call`.

A stream is sent by :func:`send_stream`, in the worker that ran the
endpoint. Flow control is a window of chunks: the server sends chunk ``n``
only while ``n < credit + window``, where ``credit`` is the number of chunks
the caller has consumed, so at most ``window`` chunks are ever buffered, here
(kept until consumed, to send them again if they are lost) and on the way.
The states of one stream::

    sending ──window full──► waiting for credit ──credit──► sending
       │  ▲                        │
       │  └──resume N: send again from chunk N
       ├──generator ends or raises──► ending: the last reply is sent, and kept
       │                              until the caller has consumed everything
       └──cancel, deadline, or transport closed──► closed (generator.close())
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from rpcframe import exceptions, wire
from rpcframe.drivers import base
from rpcframe.rpc.current import Call
from rpcframe.wire import calls as wire_calls

__all__ = ["Control", "Streamed", "send_stream"]

LOG = logging.getLogger(__name__)

#: Longest single wait for credit; the deadline and a cancel are checked in between.
_CREDIT_WAIT = 1.0
_SEND_RETRY_FIRST = 0.05
_SEND_RETRY_MAX = 1.0


class Streamed:
    """What a streaming endpoint returned: its iterator, with what serializes a chunk."""

    __slots__ = ("ctxt", "iterator", "serializer")

    def __init__(self, ctxt: Any, iterator: Iterator[Any], serializer: Any) -> None:
        self.ctxt = ctxt
        self.iterator = iterator
        self.serializer = serializer

    def close(self) -> None:
        close = getattr(self.iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                LOG.exception("Closing a streaming endpoint's generator failed")


class Control:
    """A running call's control channel, watched on the server's inbox.

    Receives the caller's cancel (which cancels :attr:`call`) and a stream's
    credit and resume requests. Thread-safe: the inbox delivers, the worker
    waits on :attr:`cond`.
    """

    def __init__(self, transport: Any, call: Call, deadline: float) -> None:
        self._transport = transport
        self.call = call
        self.id = wire.new_id()
        self.deadline = time.monotonic() + max(0.0, deadline - time.time())
        self.cond = threading.Condition()
        self.credit = 0  # chunks the caller has consumed
        self.resume_from: int | None = None
        #: A timer that announces the call later, if it asked to be announced late.
        self.announcement: Any = None
        self.finished = False
        self.inbox = transport._watch(self.id, self).topic

    def started_message(self, msg_id: str, server: str | None) -> bytes:
        """The announcement telling the caller where to send its cancel."""
        started = {"control": self.inbox, "id": self.id, "server": server}
        return wire.encode_reply(
            msg_id, None, None, ending=False, extra={wire_calls.KEY: {"started": started}}
        )

    def deliver(self, reply: wire.Reply) -> None:
        note = wire_calls.annotation(reply.message) or {}
        with self.cond:
            credit = note.get("credit")
            if isinstance(credit, int) and not isinstance(credit, bool) and credit > self.credit:
                self.credit = credit
            resume = note.get("resume")
            if isinstance(resume, int) and not isinstance(resume, bool) and resume >= 0:
                self.resume_from = (
                    resume if self.resume_from is None else min(self.resume_from, resume)
                )
            self.cond.notify_all()
        if note.get("cancel") is True:
            LOG.info("The caller cancelled %r (message %s)", self.call.method, self.call.id)
            self._stop("the caller cancelled it")

    def expired(self) -> None:
        self._stop("its deadline passed")

    def closed(self) -> None:
        self._stop("the server's transport was closed")

    def _stop(self, reason: str) -> None:
        self.call._cancel(reason)
        with self.cond:
            self.cond.notify_all()

    def finish(self) -> None:
        self.finished = True
        if self.announcement is not None:
            self.announcement.cancel()
        self._transport._unwatch(self.id)


def send_stream(
    transport: Any,
    address: base.Address,
    msg_id: str,
    streamed: Streamed,
    control: Control,
    window: int,
    failure_of: Any,
) -> int:
    """Send a generator's chunks with flow control, then the last reply.

    Returns the number of chunks sent. Never raises: the generator's error
    becomes the last reply's failure; a cancel, the deadline or a lost caller
    closes the generator.
    """
    call = control.call
    kept: dict[int, bytes] = {}  # sent and not yet consumed, by chunk number
    sent = 0
    ended = False
    try:
        while True:
            if not _wait_for_room(transport, address, control, kept, sent, window, ended):
                return sent
            if ended:
                return sent
            try:
                chunk = next(streamed.iterator)
            except StopIteration:
                body = _last_reply(msg_id, sent, None)
                ended = True
            except Exception as exc:
                LOG.exception("Exception while streaming %r", call.method)
                body = _last_reply(msg_id, sent, failure_of(exc))
                ended = True
            else:
                try:
                    value = streamed.serializer.serialize_entity(streamed.ctxt, chunk)
                    body = wire.encode_reply(
                        msg_id, value, None, ending=False, extra={wire_calls.KEY: {"seq": sent}}
                    )
                except (TypeError, ValueError) as exc:
                    problem = TypeError(f"chunk {sent} of {call.method!r} cannot be sent: {exc}")
                    LOG.warning("%s", problem)
                    body = _last_reply(msg_id, sent, failure_of(problem))
                    ended = True
            kept[sent] = body
            if not _send(transport, address, body, control):
                return sent
            if not ended:
                sent += 1
    finally:
        if not ended or call.cancelled:
            streamed.close()


def _last_reply(msg_id: str, count: int, failure: str | None) -> bytes:
    return wire.encode_reply(
        msg_id, None, failure, ending=True, extra={wire_calls.KEY: {"end": count}}
    )


def _wait_for_room(
    transport: Any,
    address: base.Address,
    control: Control,
    kept: dict[int, bytes],
    sent: int,
    window: int,
    ended: bool,
) -> bool:
    """Wait until chunk ``sent`` may go (or, once ended, until all was consumed).

    Sends again what the caller asked to have resent. False when the stream
    must stop: cancelled, past its deadline, or the caller cannot be reached.
    """
    call = control.call
    while True:
        with control.cond:
            for seq in [n for n in kept if n < control.credit]:
                del kept[seq]
            resume, control.resume_from = control.resume_from, None
            if call.cancelled:
                return False
            room = control.credit >= sent if ended else sent < control.credit + window
            if resume is None and room:
                return True
            if resume is None:
                left = control.deadline - time.monotonic()
                if left <= 0:
                    call._cancel("its deadline passed")
                    return False
                control.cond.wait(min(left, _CREDIT_WAIT))
                continue
        for seq in sorted(n for n in kept if n >= resume):
            if not _send(transport, address, kept[seq], control):
                return False


def _send(transport: Any, address: base.Address, body: bytes, control: Control) -> bool:
    """Send one chunk, retrying while the transport fails, until the deadline.

    Not confirmed (:meth:`~rpcframe.transport.Transport._send_chunk`): the
    window's credit is the proof of delivery.
    """
    delay = _SEND_RETRY_FIRST
    while not control.call.cancelled:
        left = control.deadline - time.monotonic()
        if left <= 0:
            control.call._cancel("its deadline passed")
            return False
        try:
            transport._send_chunk(address, body, min(left, 5.0))
            return True
        except exceptions.MessagingException as exc:
            LOG.debug("Stream %s: sending failed (%s); trying again", control.call.id, exc)
        with control.cond:
            control.cond.wait(min(delay, left))
        delay = min(delay * 2, _SEND_RETRY_MAX)
    return False
