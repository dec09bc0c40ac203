"""AsyncRPCServer: serve endpoints on an event loop.

``async def`` endpoint methods run on the loop (each request in its own
task), plain methods in a thread pool, both under the same dispatcher,
access policy and serializer as :class:`rpcframe.RPCServer`'s::

    class Compute:
        async def reboot(self, ctxt, instance):
            await hypervisor.reboot(instance)

        def get_console(self, ctxt, instance):   # blocking: runs in the pool
            return read_console(instance)

        async def export(self, ctxt, image):     # an async generator streams
            async for block in read(image):
                yield block

    server = rpcframe.aio.get_rpc_server(transport, target, [Compute()])
    await server.start()
    ...
    await server.stop()    # stops receiving, then lets what runs finish

The semantics are the threaded server's: requests are acknowledged before
they run (at most once); a request whose caller's deadline passed is not
run; a malformed request gets an error reply where it names a caller;
:func:`rpcframe.rpc.current_call` works in the endpoint (in the pool too).
A caller's cancel cancels an async endpoint's task (the endpoint sees
``CancelledError``) and sets ``current_call().cancelled`` for a pool one;
either way its reply is dropped. A server limited by ``max_call_seconds``
cancels the request and tells its caller at once.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from rpcframe import exceptions, identity, wire
from rpcframe import serializer as msg_serializer
from rpcframe.aio import later
from rpcframe.drivers import base
from rpcframe.rpc import current, streaming
from rpcframe.rpc import dispatcher as rpc_dispatcher
from rpcframe.rpc import server as rpc_server
from rpcframe.target import Target
from rpcframe.wire import calls as wire_calls

__all__ = ["AsyncRPCServer", "get_rpc_server"]

LOG = logging.getLogger(__name__)

_DEDUP_SIZE = 1024
_CLIENT_ERRORS = (
    exceptions.NoSuchMethod,
    exceptions.UnsupportedVersion,
    exceptions.MalformedMessage,
)
_CREDIT_WAIT = 1.0


class _Control:
    """A running call's control channel on the loop: the caller's cancel and stream credit."""

    def __init__(self, call: current.Call, deadline: float) -> None:
        self.call = call
        # Made when the call is announced: most calls end before.
        self._id: str | None = None
        self.deadline = time.monotonic() + max(0.0, deadline - time.time())
        self.credit = 0
        self.resume_from: int | None = None
        self.changed = asyncio.Event()
        #: Until the call is announced: the timer that will; then the task announcing it.
        self.announcing: later.Scheduled | None = None
        self.announcement: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        """The control channel's id, the caller's address for its cancel and credit."""
        if self._id is None:
            self._id = wire.new_id()
        return self._id

    @property
    def announced(self) -> bool:
        """Whether the call was announced (and its control channel watched)."""
        return self._id is not None

    def stop_announcing(self) -> None:
        if self.announcing is not None:
            self.announcing.cancel()
        if self.announcement is not None:
            self.announcement.cancel()

    def deliver(self, reply: wire.Reply) -> None:
        note = wire_calls.annotation(reply.message) or {}
        credit = note.get("credit")
        if isinstance(credit, int) and not isinstance(credit, bool) and credit > self.credit:
            self.credit = credit
        resume = note.get("resume")
        if isinstance(resume, int) and not isinstance(resume, bool) and resume >= 0:
            self.resume_from = resume if self.resume_from is None else min(self.resume_from, resume)
        if note.get("cancel") is True:
            LOG.info("The caller cancelled %r (message %s)", self.call.method, self.call.id)
            self.call._cancel("the caller cancelled it")
        self.changed.set()

    def expired(self) -> None:
        self.call._cancel("its deadline passed")
        self.changed.set()

    def closed(self) -> None:
        self.call._cancel("the server's transport was closed")
        self.changed.set()


class AsyncRPCServer:
    """Serves one target's requests on an event loop. Build it with :func:`get_rpc_server`.

    :param pool: where plain (not ``async def``) endpoint methods run;
        default a thread pool of ``executor_thread_pool_size`` threads.
    """

    def __init__(
        self,
        transport: Any,
        target: Target,
        dispatcher: rpc_dispatcher.RPCDispatcher,
        *,
        pool: concurrent.futures.Executor | None = None,
        max_call_seconds: float | None = None,
        max_concurrent_calls: int | None = None,
    ) -> None:
        for name, value, kind in (
            ("max_call_seconds", max_call_seconds, (int, float)),
            ("max_concurrent_calls", max_concurrent_calls, int),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, kind) or value < 0
            ):
                raise ValueError(f"{name} must be a number >= 0 (0: no limit), got {value!r}")
        self.transport = transport
        self.conf = transport.conf
        self.target = target
        self.dispatcher = dispatcher
        self._pool = pool
        self._own_pool = pool is None
        self._max_call_seconds = max_call_seconds
        self._call_seconds = 0.0
        self._max_concurrent_calls = max_concurrent_calls
        self._listener: Any = None
        self._receiving: asyncio.Task[None] | None = None
        self._later: later.Later | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._seen: collections.deque[str] = collections.deque(maxlen=_DEDUP_SIZE)
        self._seen_set: set[str] = set()

    @property
    def _name(self) -> str:
        return f"rpcframe-aio-rpc-{self.target.topic}"

    def _limit(self, name: str) -> Any:
        given = getattr(self, f"_{name}")
        return given if given is not None else getattr(self.conf.rpcframe, f"rpc_{name}")

    # -- life ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe and start serving; a second call does nothing."""
        if self._receiving is not None:
            return
        try:
            self._listener = await self.transport._listen(self.target)
        except exceptions.TransportDriverError as exc:
            raise exceptions.ServerListenError(self.target, exc) from exc
        size = self.conf.executor_thread_pool_size
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix=self._name)
        self._call_seconds = self._limit("max_call_seconds")  # read once per start
        cap = self._limit("max_concurrent_calls") or size
        loop = asyncio.get_running_loop()
        self._later = later.Later(loop)
        self._receiving = loop.create_task(
            self._receive(self._listener, asyncio.Semaphore(cap)), name=self._name
        )

    async def stop(self) -> None:
        """Stop receiving; requests already taken go on (see :meth:`wait`)."""
        listener, receiving = self._listener, self._receiving
        self._listener = self._receiving = None
        if listener is not None:
            listener.close()
        if receiving is not None:
            await receiving

    async def wait(self, timeout: float | None = None) -> None:
        """Let the requests taken finish (``server_stop_timeout`` at most, by default)."""
        if timeout is None:
            timeout = self.conf.rpcframe.server_stop_timeout
        running = set(self._running)
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            if pending:
                LOG.warning(
                    "%s: %d requests were still running %.1f s after stop(); wait() gives up",
                    self._name,
                    len(pending),
                    timeout,
                )
        if self._own_pool and self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def _receive(self, listener: Any, slots: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await slots.acquire()
            incoming = await listener.poll()
            if incoming is None:
                slots.release()
                return
            incoming.ack()  # at most once, as the threaded server
            task = loop.create_task(self._handle(incoming))
            self._running.add(task)
            task.add_done_callback(functools.partial(self._done, slots))

    def _done(self, slots: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            LOG.error("%s: unexpected error while handling a request", self._name,
                      exc_info=task.exception())  # fmt: skip

    # -- one request ----------------------------------------------------------------

    async def _handle(self, incoming: base.IncomingMessage) -> None:
        try:
            request = wire.parse_request(incoming.body)
        except exceptions.MalformedMessage as exc:
            LOG.warning("%s: dropping malformed request: %s", self._name, exc.reason)
            if exc.msg_id and exc.reply_q:
                await self._reply(
                    exc.reply_q, exc.msg_id, None, _failure_of(exc), None, incoming.reply_ref
                )
            return
        if self._is_duplicate(request.unique_id):
            LOG.info("%s: dropping duplicate request %s", self._name, request.unique_id)
            return
        if request.deadline is not None and time.time() > request.deadline:
            LOG.info("%s: not running %r: its caller stopped waiting", self._name, request.method)
            return
        sender = identity.Sender.from_wire(request.message.get(wire.SENDER_KEY))
        call = current.Call(request.msg_id, request.method, request.deadline, sender)
        control = await self._announce(request, call)
        loop = asyncio.get_running_loop()
        beating = (
            loop.create_task(self._heartbeats(request))
            if request.monitor_timeout and request.reply_q and request.msg_id
            else None
        )
        limit = self._call_seconds
        limit_timer = (
            loop.call_later(limit, lambda: loop.create_task(self._over_limit(request, call, limit)))
            if limit
            else None
        )
        result = failure = None
        streamed = False
        try:
            with identity.serving(sender), current.running(call):
                result = await self._run(request, call)
            if isinstance(result, streaming.Streamed):
                chunks, result = result, None
                await self._stream(request, chunks, control)
                streamed = True
        except asyncio.CancelledError:
            if not call.cancelled:
                raise  # the server itself is being cancelled
        except exceptions.ExpectedException as exc:
            failure = wire.serialize_remote_exception(exc.exc_info)
        except _CLIENT_ERRORS as exc:
            LOG.warning("%s: %s", self._name, exc)
            failure = wire.serialize_remote_exception()
        except Exception:
            LOG.exception("Exception during message handling")
            failure = wire.serialize_remote_exception()
        finally:
            if limit_timer is not None:
                limit_timer.cancel()
            if beating is not None:
                beating.cancel()
            if control is not None:
                control.stop_announcing()
                if control.announced:
                    self.transport._unwatch(control.id)
        if streamed or not request.wants_reply:
            return
        if call.cancelled:
            LOG.info("%s: %r (message %s) was cancelled (%s); its reply is dropped",
                     self._name, request.method, request.msg_id, call.cancel_reason)  # fmt: skip
            return
        await self._reply(
            request.reply_q,  # type: ignore[arg-type]
            request.msg_id,  # type: ignore[arg-type]
            result,
            failure,
            request,
            incoming.reply_ref,
        )

    async def _heartbeats(self, request: wire.Request) -> None:
        """Call-monitor heartbeats to the caller while its call runs, as the threaded server's.

        One every :func:`~rpcframe.rpc.server.heartbeat_interval` (half the
        caller's ``_timeout``, never more often than its minimum); a beat
        that cannot be sent ends them (the caller then gives up on the call).
        """
        address = _reply_address(request.reply_q)
        body = wire.encode_reply(request.msg_id or "", None, None, ending=False)
        interval = rpc_server.heartbeat_interval(request.monitor_timeout)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.transport._send_reply(address, body, interval)
            except exceptions.MessagingException as exc:
                LOG.debug("Call-monitor heartbeat for %s failed: %s", request.msg_id, exc)
                return

    async def _run(self, request: wire.Request, call: current.Call) -> Any:
        """Call the endpoint: on the loop if it is a coroutine function, else in the pool."""
        func, ctxt, args = self.dispatcher.prepare(request)
        loop = asyncio.get_running_loop()
        try:
            if inspect.iscoroutinefunction(func):
                result = await _cancellable(loop, call, func(ctxt, **args))
            else:
                context = contextvars.copy_context()
                result = await loop.run_in_executor(
                    self._pool, functools.partial(context.run, func, ctxt, **args)
                )
                if inspect.isawaitable(result):
                    result = await result
        except TypeError:
            self.dispatcher.explain_bad_arguments(func, request.method, ctxt, args)
            raise
        return self.dispatcher.finish(request, ctxt, result)

    async def _announce(self, request: wire.Request, call: current.Call) -> _Control | None:
        options = request.options
        after = None if options is None else options.announce_after
        if after is None or not request.wants_reply:
            return None
        deadline = request.deadline
        if deadline is None:
            deadline = time.time() + float(self.conf.rpc_response_timeout)
        control = _Control(call, deadline)

        async def announce() -> None:
            # Only now is there a control channel to watch and a body to encode:
            # a call shorter than ``after`` costs neither.
            inbox = await self.transport._inbox_address()
            self.transport._watch(control.id, control)
            started = {"control": inbox.topic, "id": control.id, "server": self.target.server}
            body = wire.encode_reply(
                request.msg_id or "", None, None, ending=False,
                extra={wire_calls.KEY: {"started": started}},
            )  # fmt: skip
            try:
                await self.transport._send_reply(_reply_address(request.reply_q), body, 5.0)
            except exceptions.MessagingException as exc:
                LOG.info("%s: could not announce %s: %s", self._name, request.msg_id, exc)

        if after:
            loop = asyncio.get_running_loop()

            def start() -> None:  # announced only if the call runs that long
                control.announcing = None
                control.announcement = loop.create_task(announce())

            assert self._later is not None  # made by start()
            control.announcing = self._later.call_later(after, start)
        else:
            await announce()
        return control

    async def _over_limit(self, request: wire.Request, call: current.Call, limit: float) -> None:
        if call.cancelled:
            return
        reason = f"it ran longer than this server's limit of {limit:g} s (rpc_max_call_seconds)"
        LOG.warning("%s: cancelling %r: %s", self._name, request.method, reason)
        call._cancel(reason)
        if request.wants_reply:
            error = exceptions.CallCancelled(f"{request.method!r} was cancelled: {reason}")
            await self._reply(request.reply_q, request.msg_id, None, _failure_of(error), request)  # type: ignore[arg-type]

    async def _stream(
        self, request: wire.Request, streamed: streaming.Streamed, control: _Control | None
    ) -> None:
        """Send a generator's chunks under the caller's credit window, then the last reply."""
        options = request.options
        if options is None or options.window is None or control is None:
            await _aclose(streamed.iterator)
            raise TypeError(
                f"RPC method {request.method!r} streams its results (it returns a generator); "
                "call it with RPCClient.stream()"
            )
        address = _reply_address(request.reply_q)
        msg_id, window, call = request.msg_id or "", options.window, control.call
        kept: dict[int, bytes] = {}
        sent = 0
        chunks = _chunks_of(streamed.iterator, self._pool)
        try:
            while True:
                if not await self._room(address, control, kept, sent, window):
                    return
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    body, ended = _last(msg_id, sent, None), True
                except Exception as exc:
                    LOG.exception("Exception while streaming %r", request.method)
                    body, ended = _last(msg_id, sent, _failure_of(exc)), True
                else:
                    value = streamed.serializer.serialize_entity(streamed.ctxt, chunk)
                    body = wire.encode_reply(
                        msg_id, value, None, ending=False, extra={wire_calls.KEY: {"seq": sent}}
                    )
                    ended = False
                kept[sent] = body
                await self.transport._send_chunk(address, body, 5.0)
                if ended:
                    # Keep it until the caller consumed everything, to send again if lost.
                    await self._room(address, control, kept, sent, 0)
                    return
                sent += 1
        finally:
            if call.cancelled:
                await _aclose(streamed.iterator)

    async def _room(
        self,
        address: base.Address,
        control: _Control,
        kept: dict[int, bytes],
        sent: int,
        window: int,
    ) -> bool:
        """Wait until chunk ``sent`` may go (window 0: until all was consumed); False: stop."""
        while True:
            for seq in [n for n in kept if n < control.credit]:
                del kept[seq]
            resume, control.resume_from = control.resume_from, None
            if control.call.cancelled:
                return False
            if resume is not None:
                for seq in sorted(n for n in kept if n >= resume):
                    await self.transport._send_chunk(address, kept[seq], 5.0)
                continue
            if (window and sent < control.credit + window) or (
                not window and control.credit >= sent
            ):
                return True
            left = control.deadline - time.monotonic()
            if left <= 0:
                control.call._cancel("its deadline passed")
                return False
            control.changed.clear()
            try:
                async with asyncio.timeout(min(left, _CREDIT_WAIT)):
                    await control.changed.wait()
            except TimeoutError:
                pass

    async def _reply(
        self,
        reply_q: str,
        msg_id: str,
        result: Any,
        failure: str | None,
        request: Any,
        reply_ref: str | None = None,
    ) -> None:
        try:
            body = wire.encode_reply(msg_id, result, failure)
        except (TypeError, ValueError) as exc:
            method = request.method if request is not None else "?"
            problem = TypeError(f"the result of RPC method {method!r} cannot be sent: {exc}")
            LOG.warning("%s: %s", self._name, problem)
            body = wire.encode_reply(msg_id, None, _failure_of(problem))
        timeout = float(self.conf.rpc_response_timeout)
        if request is not None and request.deadline is not None:
            timeout = max(0.0, min(timeout, request.deadline - time.time()))
        try:
            await self.transport._send_reply(_reply_address(reply_q), body, timeout, reply_ref)
        except exceptions.MessagingException as exc:
            LOG.warning("%s: could not send the reply to %s: %s", self._name, msg_id, exc)

    def _is_duplicate(self, unique_id: str | None) -> bool:
        if not unique_id:
            return False
        if unique_id in self._seen_set:
            return True
        if len(self._seen) == _DEDUP_SIZE:
            self._seen_set.discard(self._seen[0])
        self._seen.append(unique_id)
        self._seen_set.add(unique_id)
        return False


def _reply_address(reply_q: str | None) -> base.Address:
    return base.Address("", reply_q or "", kind=base.REPLY)


def _last(msg_id: str, count: int, failure: str | None) -> bytes:
    return wire.encode_reply(
        msg_id, None, failure, ending=True, extra={wire_calls.KEY: {"end": count}}
    )


def _failure_of(exc: BaseException) -> str:
    return wire.serialize_remote_exception((type(exc), exc, exc.__traceback__))


async def _cancellable(
    loop: asyncio.AbstractEventLoop, call: current.Call, endpoint: Awaitable[Any]
) -> Any:
    """Await a coroutine endpoint in this (the request's) task; the caller's cancel cancels it.

    No task of its own: a cancel while the endpoint runs cancels the
    request's task there (and is taken back once the CancelledError is out,
    so nothing later in the task takes it for its own); one that comes
    after the endpoint returned does nothing.
    """
    task = asyncio.current_task()
    assert task is not None
    running = True

    def cancel_there() -> None:
        if running:
            task.cancel()

    def on_cancel() -> None:  # in the thread that learnt of the cancel
        loop.call_soon_threadsafe(cancel_there)

    call.add_cancel_callback(on_cancel)
    try:
        return await endpoint
    except asyncio.CancelledError:
        if call.cancelled and task.cancelling():
            task.uncancel()
        raise
    finally:
        running = False


async def _chunks_of(iterator: Any, pool: concurrent.futures.Executor | None) -> Any:
    """An async generator over a sync or async iterator (a sync one advanced in the pool)."""
    if hasattr(iterator, "__anext__"):
        async for chunk in iterator:
            yield chunk
        return
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # current_call() inside the generator too
    done = object()
    while True:
        chunk = await loop.run_in_executor(
            pool, functools.partial(context.run, next, iterator, done)
        )
        if chunk is done:
            return
        yield chunk


async def _aclose(iterator: Any) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


def get_rpc_server(
    transport: Any,
    target: Target,
    endpoints: Sequence[Any],
    serializer: msg_serializer.Serializer | None = None,
    access_policy: Any = None,
    *,
    pool: concurrent.futures.Executor | None = None,
    max_call_seconds: float | None = None,
    max_concurrent_calls: int | None = None,
) -> AsyncRPCServer:
    """Build an asyncio RPC server for ``target`` (topic and server required) and ``endpoints``."""
    dispatcher = rpc_dispatcher.RPCDispatcher(
        endpoints, serializer, access_policy, conf=transport.conf
    )
    return AsyncRPCServer(
        transport,
        target,
        dispatcher,
        pool=pool,
        max_call_seconds=max_call_seconds,
        max_concurrent_calls=max_concurrent_calls,
    )
