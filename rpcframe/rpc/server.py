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
call-monitor heartbeats get one every half interval while they run. Every
failure goes back to the caller as a remote error, or into the log for
casts; a malformed request never stops the server. While an endpoint runs,
:func:`rpcframe.rpc.current_sender` says who sent the request (the context
the endpoint receives is exactly what the caller sent).
"""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe import exceptions as msg_exceptions
from rpcframe import identity, wire
from rpcframe import serializer as msg_serializer
from rpcframe import server as msg_server
from rpcframe.drivers import base
from rpcframe.rpc import dispatcher as rpc_dispatcher
from rpcframe.target import Target

__all__ = ["RPCServer", "expected_exceptions", "expose", "get_rpc_server"]

LOG = logging.getLogger(__name__)

_DEDUP_SIZE = 1024
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
    ) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a rpcframe Target, got {type(target).__name__}")
        if not (target.topic and target.server):
            raise msg_exceptions.InvalidTarget(
                "A server's target must have topic and server names specified", target
            )
        super().__init__(transport, dispatcher, executor)
        self.target = target
        self._seen: collections.deque[str] = collections.deque(maxlen=_DEDUP_SIZE)
        self._seen_set: set[str] = set()
        self._seen_lock = threading.Lock()
        self._monitor = _CallMonitor(transport._driver, self._name)
        if self.conf.rpc_ping_enabled:
            dispatcher.add_ping_endpoint()

    @property
    def _name(self) -> str:
        return f"rpcframe-rpc-{self.target.topic}"

    def _create_listener(self) -> base.Listener:
        target = self.target
        topic = target.topic or ""  # checked in __init__
        exchange = target.exchange or self.conf.control_exchange
        addresses = [
            base.Address(exchange, topic),
            base.Address(exchange, topic, server=target.server),
        ]
        if self.transport._driver.capabilities.fanout:
            addresses.append(base.Address(exchange, topic, fanout=True))
        return self.transport._driver.listen(addresses)

    def _on_received(self, incoming: base.IncomingMessage) -> None:
        # At most once: the request is settled before it runs, as oslo does.
        incoming.ack()

    def wait(self) -> None:
        super().wait()
        self._monitor.close()

    # -- one request ----------------------------------------------------------

    def _process_incoming(self, incoming: base.IncomingMessage) -> None:
        try:
            request = wire.parse_request(incoming.body)
        except msg_exceptions.MalformedMessage as exc:
            LOG.warning("%s: dropping malformed request: %s", self._name, exc.reason)
            if exc.msg_id and exc.reply_q:
                self._reply(exc.reply_q, exc.msg_id, None, _failure_of(exc), None)
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
        heartbeat = None
        if request.wants_reply and request.monitor_timeout:
            heartbeat = self._monitor.watch(request)
        result = failure = None
        sender = identity.Sender.from_wire(request.message.get(wire.SENDER_KEY))
        try:
            with identity.serving(sender):
                result = self.dispatcher.dispatch(request)
        except msg_exceptions.ExpectedException as exc:
            LOG.debug("Expected exception during message handling (%s)", exc.exc_info[1])
            failure = wire.serialize_remote_exception(exc.exc_info)
        except _CLIENT_ERRORS as exc:
            LOG.warning("%s: %s", self._name, exc)
            failure = wire.serialize_remote_exception()
        except Exception:
            LOG.exception("Exception during message handling")
            failure = wire.serialize_remote_exception()
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
        if request.wants_reply:
            self._reply(request.reply_q, request.msg_id, result, failure, request)  # type: ignore[arg-type]

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
        self, reply_q: str, msg_id: str, result: Any, failure: str | None, request: Any
    ) -> None:
        try:
            body = wire.encode_reply(msg_id, result, failure)
        except (TypeError, ValueError) as exc:
            method = request.method if request is not None else "?"
            LOG.warning("%s: the result of %r cannot be sent: %s", self._name, method, exc)
            try:
                raise TypeError(
                    f"the result of RPC method {method!r} cannot be sent: {exc}"
                ) from None
            except TypeError:
                body = wire.encode_reply(msg_id, None, wire.serialize_remote_exception())
        timeout = float(self.conf.rpc_response_timeout)
        if request is not None and request.deadline is not None:
            timeout = max(0.001, min(timeout, request.deadline - time.time()))
        try:
            self.transport._driver.send(
                base.Address("", reply_q, kind=base.REPLY), body, mandatory=True, timeout=timeout
            )
        except msg_exceptions.MessageUndeliverable:
            LOG.info(
                "%s: the caller of %s is gone (its reply queue no longer exists)",
                self._name,
                msg_id,
            )
        except msg_exceptions.MessagingException as exc:
            LOG.warning("%s: could not send the reply to %s: %s", self._name, msg_id, exc)


def _failure_of(exc: BaseException) -> str:
    return wire.serialize_remote_exception((type(exc), exc, exc.__traceback__))


class _Watch:
    __slots__ = ("address", "msg_id", "interval", "cancelled")

    def __init__(self, address: base.Address, msg_id: str, interval: float) -> None:
        self.address = address
        self.msg_id = msg_id
        self.interval = interval
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class _CallMonitor:
    """Sends call-monitor heartbeats for running calls, from one thread.

    The thread starts with the first watched call and sleeps on a condition
    until the next heartbeat is due; cancelled watches are skipped.
    """

    def __init__(self, driver: base.Driver, name: str) -> None:
        self._driver = driver
        self._name = name
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, _Watch]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, request: wire.Request) -> _Watch:
        interval = max(float(request.monitor_timeout or 0) / 2, 0.01)
        watch = _Watch(base.Address("", request.reply_q, kind=base.REPLY), request.msg_id, interval)  # type: ignore[arg-type]
        with self._cond:
            heapq.heappush(self._due, (time.monotonic() + interval, next(self._seq), watch))
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(
                    target=self._run, name=f"{self._name}-heartbeat", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return watch

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._due:
                    self._cond.wait()
                    continue
                due, _, watch = self._due[0]
                if watch.cancelled:
                    heapq.heappop(self._due)
                    continue
                left = due - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                heapq.heappop(self._due)
                self._cond.release()
                try:
                    self._beat(watch)
                finally:
                    self._cond.acquire()
                if not watch.cancelled:
                    heapq.heappush(
                        self._due, (time.monotonic() + watch.interval, next(self._seq), watch)
                    )

    def _beat(self, watch: _Watch) -> None:
        body = wire.encode_reply(watch.msg_id, None, None, ending=False)
        try:
            self._driver.send(watch.address, body, mandatory=True, timeout=watch.interval)
        except msg_exceptions.MessagingException as exc:
            LOG.debug("Call-monitor heartbeat for %s failed: %s", watch.msg_id, exc)
            watch.cancel()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._due.clear()
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)


def get_rpc_server(
    transport: Any,
    target: Target,
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    access_policy: Any = None,
    server_cls: type[RPCServer] = RPCServer,
) -> RPCServer:
    """Build an RPC server for ``target`` (topic and server required) and ``endpoints``."""
    dispatcher = rpc_dispatcher.RPCDispatcher(endpoints, serializer, access_policy)
    return server_cls(transport, target, dispatcher, executor)


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
