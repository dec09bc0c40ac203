"""RPCServer: serve endpoint objects on a topic.

::

    class ComputeEndpoint:
        target = rpcframe.Target(version="5.3")

        def reboot(self, ctxt, instance):
            ...

    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic="compute", server="host-1"), [ComputeEndpoint()]
    )
    server.start()

The server listens on the topic's shared queue, on its own server queue and
on the topic's fanout. Requests are acknowledged before they run (calls are
at most once, as in oslo.messaging). A request whose caller has already
given up (its ``_deadline`` passed) is not run. Calls that asked for
call-monitor heartbeats get one every half interval while they run (in an
eventlet-patched process from a native thread, so that an endpoint that
blocks the hub does not stop them, where the driver can send from one). Every
failure goes back to the caller as a remote error, or into the log for
casts; a malformed request never stops the server. A reply whose caller's
inbox is missing for a moment (a broker restart) is retried until the
caller's deadline. While an endpoint runs,
:func:`rpcframe.rpc.current_sender` says who sent the request (the context
the endpoint receives is exactly what the caller sent), and
:func:`rpcframe.rpc.current_call` gives its deadline and whether it was
cancelled.

Requests from ``call_async`` and ``stream`` ask to be announced: the server
tells the caller where its control channel is before the endpoint runs, so
that a cancel reaches the endpoint, and a generator endpoint's chunks go out
under the caller's credit window (:mod:`rpcframe.rpc.streaming`). A cancelled
call's reply is dropped. Per-server limits (``max_call_seconds``,
``max_concurrent_calls``, or the ``[rpcframe]`` options) cancel a request that
runs too long, telling its caller at once, and cap the workers.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import confread, green, identity, leniency, wire
from rpcframe import exceptions as msg_exceptions
from rpcframe import serializer as msg_serializer
from rpcframe import server as msg_server
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.rpc import current, streaming
from rpcframe.rpc import dispatcher as rpc_dispatcher
from rpcframe.target import Target
from rpcframe.timers import Timers

__all__ = ["RPCServer", "expected_exceptions", "expose", "get_rpc_server"]

LOG = logging.getLogger(__name__)

_DEDUP_SIZE = 1024
_REPLY_RETRY_FIRST = 0.25
_REPLY_RETRY_MAX = 5.0
#: Replies being retried at once, at most; beyond, a reply with no inbox is
#: dropped at once (logged), so requests naming missing queues cannot pile
#: up retries.
_MAX_REPLY_RETRIES = 1000
#: oslo.messaging's floor: it sends no heartbeat more often than once a second.
MIN_HEARTBEAT_INTERVAL = 1.0
_CLIENT_ERRORS = (
    msg_exceptions.NoSuchMethod,
    msg_exceptions.UnsupportedVersion,
    msg_exceptions.MalformedMessage,
)


class RPCServer(msg_server.MessageHandlingServer):
    """Serves one target's requests through an :class:`RPCDispatcher`.

    Build it with :func:`get_rpc_server`.
    """

    def __init__(
        self,
        transport: Any,
        target: Target,
        dispatcher: rpc_dispatcher.RPCDispatcher,
        executor: str | None = None,
        *,
        max_call_seconds: float | None = None,
        max_concurrent_calls: int | None = None,
    ) -> None:
        _check_limit("max_call_seconds", max_call_seconds, (int, float))
        _check_limit("max_concurrent_calls", max_concurrent_calls, int)
        self._max_call_seconds = max_call_seconds
        self._call_seconds = 0.0
        self._max_concurrent_calls = max_concurrent_calls
        if not isinstance(transport, msg_transport.RPCTransport):
            LOG.warning(
                "Using notification transport for RPC. Please use "
                "get_rpc_transport to obtain an RPC transport instance."
            )
        super().__init__(transport, dispatcher, executor)
        self.target = target
        self._passes_objects = self.transport.capabilities.passes_objects is True
        self._seen: collections.deque[str] = collections.deque(maxlen=_DEDUP_SIZE)
        self._seen_set: set[str] = set()
        self._seen_lock = threading.Lock()  # also guards _retrying
        self._retrying = 0  # replies waiting for their inbox to come back
        self._timers = Timers(f"{self._name}-timers")
        # Call-monitor heartbeats that a blocked hub cannot stop (patched only).
        self._native_timers = Timers(f"{self._name}-native-timers", native=True)

    @property
    def _name(self) -> str:
        return f"rpcframe-rpc-{self.target.topic}"

    def _create_listener(self) -> base.Listener:
        # A target without topic or server fails here, at start(), as in oslo.
        return self.transport._listen(self.target, None, None)

    def _start(self, override_pool_size: int | None) -> None:
        self._timers.reopen()
        self._native_timers.reopen()
        self._call_seconds = self._limit("max_call_seconds")  # read once per start
        cap = self._limit("max_concurrent_calls")
        if cap:
            override_pool_size = min(override_pool_size or self.conf.executor_thread_pool_size, cap)
        super()._start(override_pool_size)

    def _limit(self, name: str) -> Any:
        """A limit given to this server, else the ``rpc_<name>`` option (0: none)."""
        given = getattr(self, f"_{name}")
        if given is not None:
            return given
        try:
            return getattr(self.conf.rpcframe, f"rpc_{name}")
        except (AttributeError, cfg.NoSuchOptError):  # a test's mock conf
            return 0

    def _on_received(self, incoming: base.IncomingMessage) -> None:
        # At most once: the request is settled before it runs, as oslo does.
        incoming.ack()

    def _wait(self) -> None:
        super()._wait()
        self._timers.close()  # drops the pending retries too
        self._native_timers.close()
        with self._seen_lock:
            self._retrying = 0

    # -- one request ----------------------------------------------------------

    def _process_incoming(self, incoming: base.IncomingMessage) -> None:
        try:
            request = wire.parse_request(incoming.body)
        except msg_exceptions.MalformedMessage as exc:
            LOG.warning("%s: dropping malformed request: %s", self._name, exc.reason)
            if exc.msg_id and exc.reply_q:
                self._reply(
                    exc.reply_q, exc.msg_id, None, _failure_of(exc), None, None, incoming.reply_ref
                )
            return
        if self._is_duplicate(request.unique_id):
            LOG.info("%s: dropping duplicate request %s", self._name, request.unique_id)
            return
        if request.deadline is not None and time.time() > request.deadline:
            LOG.info(
                "%s: not running %r: its caller stopped waiting %.3f s ago",
                self._name,
                request.method,
                time.time() - request.deadline,
            )
            return
        started = time.monotonic()
        LOG.debug("Received %r (message %s)", request.method, request.msg_id or request.unique_id)
        passes_objects = self._passes_objects
        if passes_objects:
            attached = getattr(incoming, "attachments", None)
            request.context = leniency.context(attached, request.context)
        sender = identity.Sender.from_wire(request.message.get(wire.SENDER_KEY))
        call = current.Call(request.msg_id, request.method, request.deadline, sender)
        control = self._announce(request, call) if request.options is not None else None
        limit = self._call_seconds
        limit_timer = None
        if limit:
            limit_timer = self._timers.schedule_io(
                limit, functools.partial(self._over_limit, request, call, limit)
            )
        heartbeat = None
        if request.wants_reply and request.monitor_timeout:
            heartbeat = _Heartbeat.start(self.transport, self._timers, self._native_timers, request)
        result = failure = error = None
        streamed = False  # a stream sends its own last reply
        try:
            try:
                serving, running = identity.enter(sender), current.enter(call)
                try:
                    result = self.dispatcher.dispatch(request)
                finally:
                    current.leave(running)
                    identity.leave(serving)
                if isinstance(result, streaming.Streamed):
                    chunks, result = result, None
                    self._stream(request, chunks, control)
                    streamed = True
            except msg_exceptions.ExpectedException as exc:
                LOG.debug("Expected exception during message handling (%s)", exc.exc_info[1])
                failure = wire.serialize_remote_exception(exc.exc_info)
                error = exc.exc_info[1]
            except _CLIENT_ERRORS as exc:
                if isinstance(exc, msg_exceptions.NoSuchMethod) and exc.method.endswith(
                    "_ignore_errors"
                ):
                    # oslo's convention: a caller probing for an optional method.
                    LOG.debug("Method %s not found", exc.method)
                else:
                    LOG.warning("%s: %s", self._name, exc)
                failure = wire.serialize_remote_exception()
                error = exc
            except Exception as exc:
                LOG.exception("Exception during message handling")
                failure = wire.serialize_remote_exception()
                error = exc
        finally:
            if limit_timer is not None:
                limit_timer.cancel()
            if heartbeat is not None:
                heartbeat.cancel()
            if control is not None:
                control.finish()
        if streamed:
            return
        if request.wants_reply:
            if call.cancelled:
                LOG.info(
                    "%s: %r (message %s) was cancelled (%s); its reply is dropped",
                    self._name,
                    request.method,
                    request.msg_id,
                    call.cancel_reason,
                )
                return
            self._finishing()
            attachments = None
            if passes_objects:
                attachments = {"exception": error} if error is not None else {"result": result}
            self._reply(
                request.reply_q,  # type: ignore[arg-type]
                request.msg_id,  # type: ignore[arg-type]
                result,
                failure,
                request,
                attachments,
                incoming.reply_ref,
            )
            LOG.debug(
                "Replied %s to %r (message %s) after %.3f s",
                "a failure" if failure is not None else "its result",
                request.method,
                request.msg_id,
                time.monotonic() - started,
            )

    def _over_limit(self, request: wire.Request, call: current.Call, limit: float) -> None:
        """A request ran past the server's time limit: cancel it and tell the caller now."""
        if call.cancelled:
            return
        reason = f"it ran longer than this server's limit of {limit:g} s (rpc_max_call_seconds)"
        LOG.warning("%s: cancelling %r (message %s): %s", self._name, request.method,
                    request.msg_id or request.unique_id, reason)  # fmt: skip
        call._cancel(reason)
        if request.wants_reply:
            error = msg_exceptions.CallCancelled(f"{request.method!r} was cancelled: {reason}")
            self._reply(request.reply_q, request.msg_id, None, _failure_of(error), request)  # type: ignore[arg-type]

    def _announce(self, request: wire.Request, call: current.Call) -> streaming.Control | None:
        """Tell the caller that this server runs the call, and where to cancel it.

        At once, or (``announce`` in seconds) only if the call still runs then,
        from the timers' I/O thread: a short call costs no announcement.
        """
        options = request.options
        after = None if options is None else options.announce_after
        if after is None or not request.wants_reply:
            return None
        deadline = request.deadline
        if deadline is None:
            deadline = time.time() + float(confread.value(self.conf, "rpc_response_timeout"))
        control = streaming.Control(self.transport, call, deadline)
        address = base.Address("", request.reply_q or "", kind=base.REPLY)
        body = control.started_message(request.msg_id or "", self.target.server)

        def announce() -> None:
            if control.finished:
                return
            try:
                self.transport._send_reply(address, body, max(0.0, deadline - time.time()))
            except msg_exceptions.MessagingException as exc:
                LOG.info("%s: could not announce %s: %s", self._name, request.msg_id, exc)

        if after > 0:
            control.announcement = self._timers.schedule_io(after, announce)
        else:
            announce()
        return control

    def _stream(
        self, request: wire.Request, streamed: streaming.Streamed, control: streaming.Control | None
    ) -> None:
        """Send what a generator endpoint yields; a request that is not a stream gets an error."""
        options = request.options
        if not request.wants_reply or options is None or options.window is None or control is None:
            streamed.close()
            raise TypeError(
                f"RPC method {request.method!r} streams its results (it returns a generator); "
                "call it with RPCClient.stream()"
            )
        address = base.Address("", request.reply_q or "", kind=base.REPLY)
        count = streaming.send_stream(
            self.transport,
            address,
            request.msg_id or "",
            streamed,
            control,
            options.window,
            _failure_of,
        )
        LOG.debug("%s: streamed %d chunks of %r", self._name, count, request.method)

    def _is_duplicate(self, unique_id: str | None) -> bool:
        if not unique_id:
            return False
        with self._seen_lock:
            if unique_id in self._seen_set:
                return True
            if len(self._seen) == _DEDUP_SIZE:
                self._seen_set.discard(self._seen[0])
            self._seen.append(unique_id)
            self._seen_set.add(unique_id)
            return False

    def _reply(
        self,
        reply_q: str,
        msg_id: str,
        result: Any,
        failure: str | None,
        request: Any,
        attachments: dict[str, Any] | None = None,
        reply_ref: str | None = None,
    ) -> None:
        try:
            body = wire.encode_reply(msg_id, result, failure)
        except (TypeError, ValueError) as exc:
            method = request.method if request is not None else "?"
            problem = TypeError(f"the result of RPC method {method!r} cannot be sent: {exc}")
            if attachments is not None:
                # The lenient fake hands the object over as oslo's fake does, and says
                # that production would fail here.
                attachments["unsendable"] = str(problem)
                body = wire.encode_reply(msg_id, None, None)
            else:
                LOG.warning("%s: the result of %r cannot be sent: %s", self._name, method, exc)
                body = wire.encode_reply(msg_id, None, _failure_of(problem))
        # Until the caller stops waiting (its deadline), but never longer than
        # rpc_response_timeout from now, whatever the request says: callers
        # that send no deadline (oslo.messaging's) get that much, and a far
        # future deadline from the wire cannot keep retries going for ever.
        deadline = time.time() + float(confread.value(self.conf, "rpc_response_timeout"))
        if request is not None and request.deadline is not None:
            deadline = min(deadline, request.deadline)
        address = base.Address("", reply_q, kind=base.REPLY)
        self._send_reply(address, msg_id, body, deadline, 0.0, attachments, reply_ref)

    def _send_reply(
        self,
        address: base.Address,
        msg_id: str,
        body: bytes,
        deadline: float,
        delay: float,
        attachments: dict[str, Any] | None,
        reply_ref: str | None = None,
        retrying: bool = False,
    ) -> None:
        """Send a reply; while its inbox is missing, try again later until the deadline.

        An inbox goes missing for a moment when a broker restarts and the
        caller has not declared it again yet, so an undeliverable reply is
        retried (with backoff, on the timers' I/O thread) instead of dropped.
        Each attempt waits at most :data:`_REPLY_RETRY_MAX`, and at most
        :data:`_MAX_REPLY_RETRIES` replies are being retried at once.
        """
        left = deadline - time.time()
        if left <= 0:
            LOG.info("%s: the caller of %s stopped waiting; reply dropped", self._name, msg_id)
            self._retry_done(retrying)
            return
        try:
            self.transport._send_reply(
                address, body, min(left, _REPLY_RETRY_MAX), attachments, reply_ref
            )
        except msg_exceptions.MessageUndeliverable:
            if not retrying and not self._retry_started():
                LOG.warning(
                    "%s: no inbox for %s and %d replies already waiting for theirs; reply dropped",
                    self._name,
                    msg_id,
                    _MAX_REPLY_RETRIES,
                )
                return
            delay = min(max(delay * 2, _REPLY_RETRY_FIRST), _REPLY_RETRY_MAX, left)
            LOG.debug("%s: no inbox for %s yet; retrying in %.2f s", self._name, msg_id, delay)
            timer = self._timers.schedule_io(
                delay,
                lambda: self._send_reply(
                    address, msg_id, body, deadline, delay, attachments, reply_ref, retrying=True
                ),
            )
            if timer.cancelled:  # the server stopped
                self._retry_done(True)
            return
        except msg_exceptions.MessagingException as exc:
            LOG.warning("%s: could not send the reply to %s: %s", self._name, msg_id, exc)
        self._retry_done(retrying)

    def _retry_started(self) -> bool:
        with self._seen_lock:
            if self._retrying >= _MAX_REPLY_RETRIES:
                return False
            self._retrying += 1
            return True

    def _retry_done(self, retrying: bool) -> None:
        if retrying:
            with self._seen_lock:
                self._retrying -= 1


def _failure_of(exc: BaseException) -> str:
    return wire.serialize_remote_exception((type(exc), exc, exc.__traceback__))


class _Heartbeat:
    """Sends call-monitor heartbeats for one running call, off the worker's thread.

    Each beat is a job on the server's timers' I/O thread (never on the
    timer thread: a beat is a send). In a threaded process, or where the
    driver cannot send from a native thread, it is an ordinary mandatory
    send. In an eventlet-patched process whose driver has a detached sender,
    native timers write it, so that beats go on while the endpoint blocks
    the hub.

    States: beating (a next beat is scheduled) → cancelled (the call ended)
    or stopped (a beat failed). ``cancel`` and the beat that schedules the
    next one hold one lock, so a cancel never misses the beat being
    scheduled, and no beat is scheduled after a cancel.
    """

    def __init__(self, timers: Timers, interval: float, send: Callable[[], bool]) -> None:
        self._timers = timers
        self._interval = interval
        self._send = send  # one beat; False: stop beating
        self._lock = timers.new_lock()
        self._done = False
        with self._lock:  # a first beat due at once waits for _timer to be set
            self._timer = timers.schedule_io(interval, self._beat)

    @classmethod
    def start(
        cls,
        transport: msg_transport.Transport,
        timers: Timers,
        native_timers: Timers,
        request: wire.Request,
    ) -> _Heartbeat:
        address = base.Address("", request.reply_q or "", kind=base.REPLY)
        body = wire.encode_reply(request.msg_id or "", None, None, ending=False)
        interval = heartbeat_interval(request.monitor_timeout)
        # Connecting for it may take one heartbeat interval at most: the
        # call is about to run.
        detached = transport._detached_sender(address, interval) if green.patched() else None
        if detached is not None:

            def send_detached() -> bool:
                # A beat not written now (reconnecting, say) is not a reason
                # to stop: the next one may be.
                detached(body)
                return True

            return cls(native_timers, interval, send_detached)

        def send() -> bool:
            try:
                transport._send_reply(address, body, interval)
            except msg_exceptions.MessagingException as exc:
                LOG.debug("Call-monitor heartbeat for %s failed: %s", request.msg_id, exc)
                return False
            return True

        return cls(timers, interval, send)

    def _beat(self) -> None:
        if self._done or not self._send():
            return
        with self._lock:
            if not self._done:
                self._timer = self._timers.schedule_io(self._interval, self._beat)

    def cancel(self) -> None:
        with self._lock:
            self._done = True
            self._timer.cancel()


def heartbeat_interval(monitor_timeout: float | None) -> float:
    """Seconds between call-monitor heartbeats for a caller's ``_timeout``.

    Half the caller's timeout, as oslo.messaging; never under
    :data:`MIN_HEARTBEAT_INTERVAL`, whatever the request says, so that one
    request cannot make a server send a stream of heartbeats to a queue it
    names.
    """
    return max(float(monitor_timeout or 0) / 2, MIN_HEARTBEAT_INTERVAL)


def get_rpc_server(
    transport: Any,
    target: Target,
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    access_policy: Any = None,
    server_cls: type[RPCServer] = RPCServer,
    *,
    max_call_seconds: float | None = None,
    max_concurrent_calls: int | None = None,
) -> RPCServer:
    """Build an RPC server for ``target`` (topic and server required) and ``endpoints``.

    ``max_call_seconds`` and ``max_concurrent_calls`` limit this server's
    requests, overriding the ``[rpcframe] rpc_max_call_seconds`` and
    ``rpc_max_concurrent_calls`` options (0: no limit).
    """
    dispatcher = rpc_dispatcher.RPCDispatcher(
        endpoints, serializer, access_policy, conf=transport.conf
    )
    limits: dict[str, Any] = {}
    if max_call_seconds is not None:
        limits["max_call_seconds"] = max_call_seconds
    if max_concurrent_calls is not None:
        limits["max_concurrent_calls"] = max_concurrent_calls
    return server_cls(transport, target, dispatcher, executor, **limits)


def _check_limit(name: str, value: Any, kind: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 (0: no limit), got {value!r}")


def expected_exceptions(*exceptions: type[BaseException]) -> Callable[[Callable], Callable]:
    """Mark exceptions an endpoint method raises as expected.

    They still go back to the caller, but the server logs them at debug
    level instead of as errors.
    """

    def outer(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except exceptions:
                raise rpc_dispatcher.ExpectedException() from None

        return inner

    return outer


def expose(func: Callable) -> Callable:
    """Allow ``func`` to be called under ExplicitRPCAccessPolicy."""
    func.exposed = True  # type: ignore[attr-defined]
    return func
