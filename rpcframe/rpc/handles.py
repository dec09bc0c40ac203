"""Calls that do not block: :class:`CallHandle` (a Future) and :class:`Stream`.

``client.call_async(ctxt, method, **kwargs)`` sends the request and returns a
:class:`CallHandle` at once; ``client.stream(ctxt, method, **kwargs)`` returns
a :class:`Stream` that iterates over the chunks a generator endpoint yields.
Both are resolved by the transport's reply inbox (:mod:`rpcframe.replies`
watches their ids), so one thread can have a thousand calls in flight.

How the server is told (:mod:`rpcframe.wire.calls`): the request asks the
server to *announce* the call when it starts it; the announcement names the
server's control channel, where the caller sends a cancel (and, for a stream,
credit and resume requests). A handle cancelled before any server announced
the call is cancelled at once locally; the server that takes it later is told
the moment it announces it, so the endpoint finds :attr:`Call.cancelled
<rpcframe.rpc.current.Call.cancelled>` set from its first moments and its
reply is dropped. A server that never announces (oslo.messaging's) is never
sent anything it did not ask for: cancelling then only stops the waiting.

Neither outlives its deadline: at the call's timeout a handle resolves with
MessagingTimeout and a stream raises it, whether or not anyone is waiting.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any

from rpcframe import exceptions, wire
from rpcframe import serializer as msg_serializer
from rpcframe.wire import calls as wire_calls

__all__ = [
    "ANNOUNCE_AFTER",
    "DEFAULT_WINDOW",
    "MAX_WINDOW",
    "CallHandle",
    "Stream",
    "StreamChunks",
    "note_announcement",
]

LOG = logging.getLogger(__name__)

#: Chunks a server may send ahead of what the caller has consumed.
DEFAULT_WINDOW = 64
#: The largest window a server accepts.
MAX_WINDOW = wire_calls.MAX_WINDOW
#: Seconds a call of call_async runs before its server announces it (see
#: :mod:`rpcframe.wire.calls`): a shorter call costs no announcement, and a
#: cancel reaches an endpoint at most this much (and a round trip) after it starts.
ANNOUNCE_AFTER = 0.05
#: Seconds without any message, while a stream waits, before asking the server
#: to send again what it has not heard was consumed (a lost chunk or credit).
RESUME_AFTER = 1.0
#: Seconds a control message (cancel, credit) may take to send.
_CONTROL_TIMEOUT = 5.0


def note_announcement(call: Any, reply: wire.Reply) -> dict[str, Any] | None:
    """Read a reply's ``_rpcframe`` object; record a ``started`` announcement on ``call``.

    Sets ``call._control`` (the server's inbox and control id) and
    ``call.server``. Shared by the threaded and the asyncio handles.
    """
    note = wire_calls.annotation(reply.message)
    started = note.get("started") if note is not None else None
    if isinstance(started, dict):
        inbox, control_id = started.get("control"), started.get("id")
        if isinstance(inbox, str) and isinstance(control_id, str):
            call._control = (inbox, control_id)
            server = started.get("server")
            call.server = server if isinstance(server, str) else None
    return note


class StreamChunks:
    """What a stream has received: chunks by number, its end, its error.

    The bookkeeping the threaded :class:`Stream` and the asyncio stream
    share; each guards it with its own lock or loop. Needs ``method`` and
    ``_transport`` on the object.
    """

    method: str
    _transport: Any

    def _init_chunks(self) -> None:
        self._chunks: dict[int, Any] = {}
        self._next = 0  # the next chunk to hand out
        self._end: int | None = None
        self._error: BaseException | None = None
        self._stats = collections.Counter[str]()  # duplicates dropped, resumes asked

    def _take(self, reply: wire.Reply, note: dict[str, Any] | None) -> bool:
        """Record a chunk or the stream's last reply; True if a reader should look again."""
        if not reply.ending:
            seq = note.get("seq") if note is not None else None
            if not isinstance(seq, int) or isinstance(seq, bool):
                return False  # a heartbeat
            if seq < self._next or seq in self._chunks:
                self._stats["duplicates"] += 1
                return False
            self._chunks[seq] = reply.result
            return True
        end = note.get("end") if note is not None else None
        if reply.failure is not None:
            try:
                self._transport._outcome(reply)
            except Exception as exc:  # noqa: BLE001 - the endpoint's error, raised in order
                self._error = exc
        elif isinstance(end, int) and not isinstance(end, bool):
            self._end = end
        else:
            self._error = exceptions.StreamNotSupported(
                f"the server answered the stream of {self.method!r} with a plain reply: it "
                "does not stream (an oslo.messaging server, or a method that is not a "
                "generator); use call() for it"
            )
        return True


class _Controlled:
    """What a handle and a stream share: the call's id, deadline and control channel."""

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        monitor_timeout: float | None,
    ) -> None:
        self._transport = transport
        self._msg_id = msg_id
        self.method = method
        self.timeout = timeout
        now = time.monotonic()
        self._call_deadline = now + timeout
        self._monitor_timeout = monitor_timeout or None
        #: When the pump gives up on the call (the call's deadline, or sooner
        #: while call-monitor heartbeats are missing).
        self.deadline = self._next_deadline(now)
        self._control: tuple[str, str] | None = None  # (server inbox, control id)
        self.server: str | None = None

    @property
    def id(self) -> str:
        """The call's id (its ``_msg_id``), unique; it names the call in both processes' logs."""
        return self._msg_id

    def _next_deadline(self, now: float) -> float:
        if self._monitor_timeout is None:
            return self._call_deadline
        return min(self._call_deadline, now + self._monitor_timeout)

    def _heard(self, reply: wire.Reply) -> dict[str, Any] | None:
        """Note a message from the server: heartbeats push the monitor deadline back.

        Returns the message's ``_rpcframe`` object, recording an announcement.
        """
        self.deadline = self._next_deadline(time.monotonic())
        return note_announcement(self, reply)

    def _timeout_error(self) -> exceptions.MessagingTimeout:
        if time.monotonic() < self._call_deadline and self._monitor_timeout is not None:
            return exceptions.MessagingTimeout(
                f"Timed out waiting for a reply to message ID {self._msg_id}: no call-monitor "
                f"heartbeat in {self._monitor_timeout} s",
                timeout=self._monitor_timeout,
            )
        error = exceptions.MessagingTimeout(
            f"Timed out waiting for a reply to message ID {self._msg_id}", timeout=self.timeout
        )
        error.method = self.method
        return error

    def _tell_server(self, **fields: Any) -> bool:
        """Send a control message to the server running the call; False if none is known."""
        control = self._control
        if control is None:
            return False
        try:
            self._transport._send_control(control[0], control[1], _CONTROL_TIMEOUT, **fields)
        except exceptions.MessagingException as exc:
            LOG.debug("Could not tell the server of %s %s: %s", self._msg_id, fields, exc)
        return True


class CallHandle(_Controlled, concurrent.futures.Future):  # type: ignore[misc]
    """A call in flight: a :class:`concurrent.futures.Future` with the call's id.

    ``result(timeout=None)`` returns the endpoint's result or raises its
    error; it raises MessagingTimeout at the call's deadline at the latest,
    and ``TimeoutError`` if only your ``timeout`` passed. ``cancel()`` stops
    the call: the handle is cancelled at once and the server is told (see
    the module's notes). ``add_done_callback(fn)`` functions run in the thread
    that read the reply; keep them short. Works with
    ``concurrent.futures.wait`` and ``as_completed``.
    """

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        monitor_timeout: float | None,
        ctxt: Any,
        serializer: msg_serializer.Serializer,
    ) -> None:
        concurrent.futures.Future.__init__(self)
        _Controlled.__init__(self, transport, msg_id, method, timeout, monitor_timeout)
        self._ctxt = ctxt
        self._serializer = serializer

    # -- the Watcher side (called by the reply inbox) ----------------------------

    def deliver(self, reply: wire.Reply) -> None:
        note = self._heard(reply)
        if note is not None and "started" in note:
            if self.cancelled():
                self._stop_watching()
                self._tell_server(cancel=True)
            return
        if not reply.ending:
            return  # a heartbeat
        self._stop_watching()
        if self.cancelled():
            return
        try:
            result = self._transport._outcome(reply)
            result = self._serializer.deserialize_entity(self._ctxt, result)
        except Exception as exc:  # noqa: BLE001 - the remote error, or the serializer's: the handle carries it
            self._resolve(exc)
        else:
            self._resolve(None, result)

    def expired(self) -> None:
        if not self.done():
            self._resolve(self._timeout_error())

    def closed(self) -> None:
        self._resolve(exceptions.TransportClosed("the transport was cleaned up during the call"))

    # -- the Future side -------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the call; False if it had already finished."""
        if not super().cancel():
            return False
        if self._tell_server(cancel=True):
            self._stop_watching()
        # Otherwise keep watching until the deadline: the server that takes
        # the call announces it, and is then told (deliver above).
        return True

    def result(self, timeout: float | None = None) -> Any:
        return super().result(self._bounded(timeout))

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return super().exception(self._bounded(timeout))

    def _bounded(self, timeout: float | None) -> float | None:
        """``timeout``, but never past the call's deadline, which then resolves the handle."""
        left = self.deadline - time.monotonic()
        if left <= 0 and not self.done():
            self._stop_watching()
            self.expired()
            return 0
        # A little slack: the inbox resolves the handle at its deadline itself.
        bound = left + 0.05
        return bound if timeout is None else min(timeout, bound)

    def _stop_watching(self) -> None:
        self._transport._unwatch(self._msg_id)

    def _resolve(self, error: BaseException | None, result: Any = None) -> None:
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(result)
        except concurrent.futures.InvalidStateError:
            pass  # cancelled, or already resolved: the first outcome stands

    def __repr__(self) -> str:
        return f"<CallHandle {self.method!r} id={self._msg_id} {self._state}>"


class Stream(StreamChunks, _Controlled):
    """The chunks a streaming endpoint yields, in order, as an iterator.

    The server sends at most ``window`` chunks ahead of what you have
    consumed, so a slow consumer never makes anything buffer without bound.
    Chunks lost on the way (a broker restart) are asked for again from the
    first one missing, until the call's deadline. Stop early with
    :meth:`close` (or leave a ``with`` block, or drop the iterator): the
    server is told and closes the generator.

    Raises the endpoint's error where the generator raised it, MessagingTimeout
    at the call's deadline, and StreamNotSupported if the server answered with
    a plain reply.
    """

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        monitor_timeout: float | None,
        ctxt: Any,
        serializer: msg_serializer.Serializer,
        window: int,
    ) -> None:
        super().__init__(transport, msg_id, method, timeout, monitor_timeout)
        self._ctxt = ctxt
        self._serializer = serializer
        self.window = window
        self._cond = threading.Condition()
        self._init_chunks()
        self._credited = 0  # what the server was last told was consumed
        self._finished = False  # ended, failed, timed out or closed: no more chunks
        self._closing = False
        self._last_heard = time.monotonic()
        self._last_resume = 0.0

    @property
    def position(self) -> int:
        """How many chunks have been handed out so far."""
        return self._next

    # -- the Watcher side ------------------------------------------------------

    def deliver(self, reply: wire.Reply) -> None:
        with self._cond:
            note = self._heard(reply)
            self._last_heard = time.monotonic()
            if note is not None and "started" in note:
                if self._closing:
                    self._stop_watching()
                    self._tell_server(cancel=True)
                return
            if self._take(reply, note):
                self._cond.notify_all()

    def expired(self) -> None:
        with self._cond:
            if self._error is None and not self._finished:
                self._error = self._timeout_error()
            self._cond.notify_all()

    def closed(self) -> None:
        with self._cond:
            if self._error is None and not self._finished:
                self._error = exceptions.TransportClosed(
                    "the transport was cleaned up during the stream"
                )
            self._cond.notify_all()

    # -- the iterator ----------------------------------------------------------------

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        credit = None
        with self._cond:
            while True:
                if self._finished:
                    raise StopIteration
                if self._next in self._chunks:
                    chunk = self._chunks.pop(self._next)
                    self._next += 1
                    if self._next - self._credited >= max(1, self.window // 2):
                        credit = self._credited = self._next
                    break
                if self._end is not None and self._next >= self._end:
                    self._finish()
                    credit = self._end  # lets the server finish at once
                    self._cond.release()
                    try:
                        self._tell_server(credit=credit)
                    finally:
                        self._cond.acquire()
                    raise StopIteration
                if self._error is not None:
                    error = self._error
                    self._finish()
                    # The server keeps its last reply until told: it need not.
                    self._cond.release()
                    try:
                        self._tell_server(cancel=True)
                    finally:
                        self._cond.acquire()
                    raise error
                now = time.monotonic()
                if now >= self.deadline:
                    self._error = self._timeout_error()
                    continue
                if now - self._last_heard >= RESUME_AFTER or (
                    self._chunks and now - self._last_resume >= RESUME_AFTER
                ):
                    self._ask_again(now)
                self._cond.wait(min(self.deadline - now, RESUME_AFTER))
        if credit is not None:
            self._tell_server(credit=credit)
        return self._serializer.deserialize_entity(self._ctxt, chunk)

    def _ask_again(self, now: float) -> None:
        """Ask the server for everything from the first missing chunk. Lock held."""
        self._last_resume = self._last_heard = now
        if self._control is not None:
            self._stats["resumes"] += 1
            self._cond.release()
            try:
                self._tell_server(resume=self._next, credit=self._next)
            finally:
                self._cond.acquire()

    def _finish(self) -> None:
        """No more chunks will be handed out. Lock held."""
        self._finished = True
        self._chunks.clear()
        self._stop_watching()

    def _stop_watching(self) -> None:
        self._transport._unwatch(self._msg_id)

    def close(self) -> None:
        """Stop the stream; the server closes the generator. Safe to call twice."""
        with self._cond:
            if self._finished:
                return
            self._finished = True
            self._closing = True
            self._chunks.clear()
            known = self._control is not None
        if known:
            self._stop_watching()
            self._tell_server(cancel=True)
        # Otherwise the server is told when it announces the call (deliver).

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_finished", True):
            self.close()

    def __repr__(self) -> str:
        return f"<Stream {self.method!r} id={self._msg_id} at chunk {self._next}>"
