"""asyncio call handles and streams: the same wire protocol as :mod:`rpcframe.rpc.handles`.

:class:`AsyncCallHandle` is awaitable (``result = await handle``) and
cancellable: ``handle.cancel()``, or cancelling the task that awaits it,
tells the server that announced the call (a call not announced yet is told
when its server announces it). :class:`AsyncStream` is an async iterator over
a generator endpoint's chunks, with the credit window and the requests to
send lost chunks again that the threaded stream has. Both resolve at the
call's deadline at the latest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from rpcframe import exceptions, wire
from rpcframe import serializer as msg_serializer
from rpcframe.rpc import handles as rpc_handles
from rpcframe.rpc.handles import RESUME_AFTER

__all__ = ["AsyncCallHandle", "AsyncStream"]

LOG = logging.getLogger(__name__)

_CONTROL_TIMEOUT = 5.0


class _Announced(rpc_handles._Controlled):
    """A call's id, deadlines and (once the server announced it) control channel.

    The deadlines are the threaded handles': the call's, and while
    call-monitor heartbeats are expected, ``call_monitor_timeout`` after
    the last message from the server (:meth:`_heard`).
    """

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        monitor_timeout: float | None = None,
    ) -> None:
        super().__init__(transport, msg_id, method, timeout, monitor_timeout)
        self._tasks: set[asyncio.Task[None]] = set()

    async def _tell(self, **fields: Any) -> None:
        control = self._control
        if control is None:
            return
        try:
            await self._transport._send_control(control[0], control[1], _CONTROL_TIMEOUT, **fields)
        except exceptions.MessagingException as exc:
            LOG.debug("Could not tell the server of %s %s: %s", self._msg_id, fields, exc)

    def _tell_soon(self, **fields: Any) -> bool:
        """Send a control message from a task; False if no server announced the call."""
        if self._control is None:
            return False
        task = asyncio.get_running_loop().create_task(self._tell(**fields))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True


class AsyncCallHandle(_Announced):
    """A call in flight on an event loop; ``await handle`` gives its result.

    ``done()``, ``cancelled()``, ``result()`` and ``exception()`` (once done),
    ``add_done_callback(fn)`` (``fn(handle)``) as for an asyncio future;
    ``await handle.wait(timeout)`` waits at most ``timeout`` seconds
    (``TimeoutError`` if the call is still running then). ``cancel()`` stops
    the call and tells the server; so does cancelling the task awaiting it.
    """

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        ctxt: Any,
        serializer: msg_serializer.Serializer,
        monitor_timeout: float | None = None,
    ) -> None:
        super().__init__(transport, msg_id, method, timeout, monitor_timeout)
        self._ctxt = ctxt
        self._serializer = serializer
        self._future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._future.add_done_callback(self._on_done)
        self._cancel_pending = False

    # -- the watcher side ------------------------------------------------------

    def deliver(self, reply: wire.Reply) -> None:
        note = self._heard(reply)
        if note is not None and "started" in note:
            if self._cancel_pending:
                self._transport._unwatch(self._msg_id)
                self._tell_soon(cancel=True)
            return
        if not reply.ending or self._future.done():
            return
        self._transport._unwatch(self._msg_id)
        try:
            result = self._transport._outcome(reply)
            result = self._serializer.deserialize_entity(self._ctxt, result)
        except Exception as exc:  # noqa: BLE001 - the remote error, carried by the handle
            self._future.set_exception(exc)
        else:
            self._future.set_result(result)

    def expired(self) -> None:
        if not self._future.done():
            self._future.set_exception(self._timeout_error())

    def closed(self) -> None:
        if not self._future.done():
            self._future.set_exception(
                exceptions.TransportClosed("the transport was cleaned up during the call")
            )

    # -- the future side -----------------------------------------------------------

    def _on_done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():  # cancel(), or the awaiting task was cancelled
            if self._tell_soon(cancel=True):
                self._transport._unwatch(self._msg_id)
            else:  # told when the server announces the call, until its deadline
                self._cancel_pending = True

    def cancel(self) -> bool:
        """Cancel the call; False if it had already finished."""
        return self._future.cancel()

    def done(self) -> bool:
        return self._future.done()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def result(self) -> Any:
        return self._future.result()

    def exception(self) -> BaseException | None:
        return self._future.exception()

    def add_done_callback(self, fn: Callable[[AsyncCallHandle], object]) -> None:
        self._future.add_done_callback(lambda _: fn(self))

    async def wait(self, timeout: float | None = None) -> Any:
        """The result, waiting at most ``timeout`` seconds (the call goes on after)."""
        async with asyncio.timeout(timeout):
            return await asyncio.shield(self._future)

    def __await__(self) -> Any:
        return self._future.__await__()

    def __repr__(self) -> str:
        state = "done" if self._future.done() else "pending"
        return f"<AsyncCallHandle {self.method!r} id={self._msg_id} {state}>"


class AsyncStream(rpc_handles.StreamChunks, _Announced):
    """``async for chunk in stream``: what a streaming endpoint yields, in order.

    As :class:`rpcframe.rpc.handles.Stream`: at most ``window`` chunks ahead of
    what was consumed, lost chunks asked for again, the endpoint's error
    raised after the chunks before it, MessagingTimeout at the deadline,
    StreamNotSupported for a plain reply. ``await stream.aclose()`` (or
    ``async with``) stops it and closes the server's generator.
    """

    def __init__(
        self,
        transport: Any,
        msg_id: str,
        method: str,
        timeout: float,
        ctxt: Any,
        serializer: msg_serializer.Serializer,
        window: int,
        monitor_timeout: float | None = None,
    ) -> None:
        super().__init__(transport, msg_id, method, timeout, monitor_timeout)
        self._ctxt = ctxt
        self._serializer = serializer
        self.window = window
        self._init_chunks()
        self._credited = 0
        self._finished = False
        self._closing = False
        self._changed = asyncio.Event()
        self._last_heard = time.monotonic()

    @property
    def position(self) -> int:
        """How many chunks have been handed out so far."""
        return self._next

    def deliver(self, reply: wire.Reply) -> None:
        note = self._heard(reply)
        self._last_heard = time.monotonic()
        if note is not None and "started" in note:
            if self._closing:
                self._transport._unwatch(self._msg_id)
                self._tell_soon(cancel=True)
            return
        if self._take(reply, note):
            self._changed.set()

    def expired(self) -> None:
        if self._error is None and not self._finished:
            self._error = self._timeout_error()
        self._changed.set()

    def closed(self) -> None:
        if self._error is None and not self._finished:
            self._error = exceptions.TransportClosed(
                "the transport was cleaned up during the stream"
            )
        self._changed.set()

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        while True:
            if self._finished:
                raise StopAsyncIteration
            if self._next in self._chunks:
                chunk = self._chunks.pop(self._next)
                self._next += 1
                if self._next - self._credited >= max(1, self.window // 2):
                    self._credited = self._next
                    await self._tell(credit=self._next)
                return self._serializer.deserialize_entity(self._ctxt, chunk)
            if self._end is not None and self._next >= self._end:
                self._finish()
                await self._tell(credit=self._end)
                raise StopAsyncIteration
            if self._error is not None:
                error = self._error
                self._finish()
                await self._tell(cancel=True)  # the server keeps its last reply until told
                raise error
            now = time.monotonic()
            if now >= self.deadline:
                self._error = self._timeout_error()
                continue
            if now - self._last_heard >= RESUME_AFTER:
                self._last_heard = now
                await self._tell(resume=self._next, credit=self._next)
            self._changed.clear()
            try:
                async with asyncio.timeout(min(self.deadline - now, RESUME_AFTER)):
                    await self._changed.wait()
            except TimeoutError:
                pass

    def _finish(self) -> None:
        self._finished = True
        self._chunks.clear()
        self._transport._unwatch(self._msg_id)

    async def aclose(self) -> None:
        """Stop the stream; the server closes the generator. Safe to call twice."""
        if self._finished:
            return
        self._finished = self._closing = True
        self._chunks.clear()
        if self._control is not None:
            self._transport._unwatch(self._msg_id)
            await self._tell(cancel=True)

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncStream {self.method!r} id={self._msg_id} at chunk {self._next}>"
