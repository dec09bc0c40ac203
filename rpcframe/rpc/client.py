"""RPCClient: send calls and casts to servers on a topic.

Services wrap an RPCClient in a class of their own, one method per remote
method, and derive per-call settings with ``prepare()``::

    class ComputeAPI:
        def __init__(self, transport):
            target = rpcframe.Target(topic="compute", version="5.0")
            self._client = rpcframe.get_rpc_client(transport, target, version_cap="5.3")

        def reboot(self, ctxt, instance, host):
            cctxt = self._client.prepare(server=host, version="5.1", timeout=30)
            return cctxt.call(ctxt, "reboot", instance=instance)

A client is immutable once built and safe to share between threads;
``prepare()`` returns a new call context and leaves the client as it was.
"""

from __future__ import annotations

import logging
from typing import Any

from rpcframe import confread, exceptions, metrics, versions, wire
from rpcframe import serializer as msg_serializer
from rpcframe import transport as msg_transport
from rpcframe.rpc import current, handles
from rpcframe.target import Target
from rpcframe.unset import UNSET, Unset

__all__ = [
    "ClientSendError",
    "RPCClient",
    "RPCVersionCapError",
    "RemoteError",
    "get_rpc_client",
]

LOG = logging.getLogger(__name__)

ClientSendError = exceptions.ClientSendError
RPCVersionCapError = exceptions.RPCVersionCapError
RemoteError = exceptions.RemoteError


_TARGET_FIELDS = ("exchange", "topic", "namespace", "version", "server", "fanout")


class _CallSettings:
    """A target plus call settings, and what checks and builds a request from them.

    The sending methods are :class:`_CallContext`'s (threads) and
    :class:`rpcframe.aio.client.AsyncCallContext`'s (asyncio); ``prepare()``
    returns the same kind as the object it is called on.
    """

    def __init__(
        self,
        transport: msg_transport.Transport,
        target: Target,
        serializer: msg_serializer.Serializer,
        timeout: float | None = None,
        version_cap: str | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: msg_transport.TransportOptions | None = None,
    ) -> None:
        self.conf = transport.conf
        self.transport = transport
        self.target = target
        self.serializer = serializer
        self.timeout = timeout
        self.version_cap = version_cap
        self.retry = retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = transport_options
        self._require_features()

    def _require_features(self) -> None:
        fanout = bool(self.target.fanout)
        options = self.transport_options
        mandatory = bool(options is not None and options.at_least_once)
        if fanout or mandatory:
            require = getattr(self.transport, "_require_driver_features", None)
            if require is not None:  # a duck-typed transport may not have it
                require(fanout=fanout, mandatory=mandatory)

    # -- derivation ---------------------------------------------------------

    #: What ``prepare()`` builds; set below, and by asyncio's client.
    _context_class: type[Any]

    def prepare(
        self,
        exchange: str | None | Unset = UNSET,
        topic: str | None | Unset = UNSET,
        namespace: str | None | Unset = UNSET,
        version: str | None | Unset = UNSET,
        server: str | None | Unset = UNSET,
        fanout: bool | None | Unset = UNSET,
        timeout: float | None | Unset = UNSET,
        version_cap: str | None | Unset = UNSET,
        retry: int | None | Unset = UNSET,
        call_monitor_timeout: float | None | Unset = UNSET,
        transport_options: msg_transport.TransportOptions | None | Unset = UNSET,
    ) -> Any:
        """Return a call context with some target fields and settings replaced."""
        if version is not UNSET and version is not None:
            try:
                versions.parse_version(version)  # type: ignore[arg-type]
            except ValueError as exc:
                raise exceptions.MessagingException(
                    f"Version must contain a major and minor integer: {exc}"
                ) from None
        changes = {
            name: value
            for name, value in zip(
                _TARGET_FIELDS,
                (exchange, topic, namespace, version, server, fanout),
                strict=True,
            )
            if value is not UNSET
        }
        return self._context_class(
            self.transport,
            self.target(**changes) if changes else self.target,
            self.serializer,
            self.timeout if timeout is UNSET else timeout,
            self.version_cap if version_cap is UNSET else version_cap,
            self.retry if retry is UNSET else retry,
            self.call_monitor_timeout if call_monitor_timeout is UNSET else call_monitor_timeout,
            self.transport_options if transport_options is UNSET else transport_options,
        )

    # -- versions -------------------------------------------------------------

    def can_send_version(self, version: str | None | Unset = UNSET) -> bool:
        """Whether ``version`` (default: the target's) is within the version cap."""
        requested = self.target.version if version is UNSET else version
        return versions.is_compatible(self.version_cap, requested)  # type: ignore[arg-type]

    def _check(self, version: str | None) -> None:
        """Refuse settings that cannot be used, and a version above the cap."""
        self._require_features()
        _check_seconds("timeout", self.timeout)
        _check_seconds("call_monitor_timeout", self.call_monitor_timeout)
        retry = self.retry
        if retry is not None and (
            isinstance(retry, bool) or not isinstance(retry, int) or retry < -1
        ):
            raise ValueError(f"retry must be None, -1 or a count >= 0, got {retry!r}")
        cap = self.version_cap
        if cap is None:
            return
        try:
            versions.parse_version(cap)
        except ValueError as exc:
            raise exceptions.MessagingException(f"bad version_cap: {exc}") from None
        try:
            compatible = versions.is_compatible(cap, version)
        except ValueError as exc:
            raise exceptions.MessagingException(f"bad version: {exc}") from None
        if not compatible:
            raise RPCVersionCapError(version=version, version_cap=cap)

    # -- sending --------------------------------------------------------------

    def _make_message(self, ctxt: Any, method: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """oslo's request dict: the method, serialized arguments, namespace, version."""
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        ser = self.serializer
        message: dict[str, Any] = {
            "method": method,
            "args": {name: ser.serialize_entity(ctxt, value) for name, value in kwargs.items()},
        }
        target = self.target
        if target.namespace is not None:
            message["namespace"] = target.namespace
        if target.version is not None:
            message["version"] = target.version
        return message

    def _prepare_call(
        self, ctxt: Any, method: str, kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], Any, float]:
        """Check a call and build its request; the timeout is what is left to it.

        Inside an endpoint, the call inherits what is left of the endpoint's
        own deadline (:func:`~rpcframe.rpc.current.inherited_timeout`).
        """
        if self.target.fanout:
            raise exceptions.InvalidTarget("A call cannot be used with fanout", self.target)
        message = self._make_message(ctxt, method, kwargs)
        context = self.serializer.serialize_context(ctxt)
        timeout = self.timeout
        if timeout is None:
            timeout = confread.value(self.conf, "rpc_response_timeout")
        self._check(message.get("version"))
        return message, context, current.inherited_timeout(timeout)


class _CallContext(_CallSettings):
    """A target plus call settings; what ``prepare()`` returns.

    As in oslo.messaging, settings a call cannot use (a negative timeout, a
    bad version cap) raise a clear error when the call is made. What the
    transport cannot do at all (a fanout target on a driver without fanout,
    ``at_least_once`` without ``mandatory``) is refused when it is built, and
    again when it sends. Safe to share between threads as long as nobody
    assigns to its target.
    """

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` on a server and return once the transport owns the request.

        No result comes back. With ``fanout`` the request goes to every
        server listening on the topic. Raises MessagingTimeout if the
        transport did not take the request within ``rpc_response_timeout``,
        MessageDeliveryFailure when ``retry`` is exhausted, and
        ClientSendError for other transport failures.
        """
        message = self._make_message(ctxt, method, kwargs)
        context = self.serializer.serialize_context(ctxt)
        self._check(message.get("version"))
        with metrics.measure(self.conf, self.target, method, "cast"):
            try:
                self.transport._send(
                    self.target,
                    context,
                    message,
                    retry=self.retry,
                    transport_options=self.transport_options,
                )
            except exceptions.TransportDriverError as exc:
                raise ClientSendError(self.target, exc) from exc

    def call(self, ctxt: Any, method: str, **kwargs: Any) -> Any:
        """Invoke ``method`` on a server and return its result.

        Blocks until the reply arrives, or raises MessagingTimeout after the
        client's timeout (default ``rpc_response_timeout``). An exception
        raised by the endpoint is re-raised here: as itself for builtins and
        ``allowed_remote_exmods``, otherwise as RemoteError.
        """
        message, context, timeout = self._prepare_call(ctxt, method, kwargs)
        with metrics.measure(self.conf, self.target, method, "call"):
            try:
                result = self.transport._send(
                    self.target,
                    context,
                    message,
                    wait_for_reply=True,
                    timeout=timeout,
                    call_monitor_timeout=self.call_monitor_timeout,
                    retry=self.retry,
                    transport_options=self.transport_options,
                )
            except exceptions.TransportDriverError as exc:
                raise ClientSendError(self.target, exc) from exc
        return self.serializer.deserialize_entity(ctxt, result)

    def call_async(
        self,
        ctxt: Any,
        method: str,
        *,
        announce_after: float = handles.ANNOUNCE_AFTER,
        **kwargs: Any,
    ) -> handles.CallHandle:
        """Send a call and return a :class:`~rpcframe.rpc.handles.CallHandle` at once.

        The handle is a :class:`concurrent.futures.Future`: ``result(timeout)``
        gives the endpoint's result or raises its error (MessagingTimeout at
        the call's deadline at the latest); ``cancel()`` stops the call and
        tells the server; ``id`` names the call. Raises here what ``call``
        raises before anything is sent (a bad version, an unusable target).

        The server announces the call (naming itself, in ``handle.server``,
        and where a cancel goes) once it has run ``announce_after`` seconds;
        a shorter call is never announced and costs no extra message. 0
        announces every call as it starts.
        """
        _check_seconds("announce_after", announce_after)
        message, context, timeout = self._prepare_call(ctxt, method, kwargs)
        msg_id = wire.new_id()
        handle = handles.CallHandle(
            self.transport,
            msg_id,
            method,
            timeout,
            self.call_monitor_timeout,
            ctxt,
            self.serializer,
        )
        self._send_watched(
            message,
            context,
            msg_id,
            handle,
            wire.CallOptions(announce=announce_after or True),
            timeout,
        )
        return handle

    def stream(
        self, ctxt: Any, method: str, *, window: int = handles.DEFAULT_WINDOW, **kwargs: Any
    ) -> handles.Stream:
        """Call a generator endpoint and iterate over what it yields.

        Returns a :class:`~rpcframe.rpc.handles.Stream`; the server sends at
        most ``window`` chunks ahead of what you have consumed. The call's
        timeout bounds the whole stream. Use it in a ``with`` block, or
        ``close()`` it, to stop early: the server then closes the generator.
        """
        _check_window(window)
        message, context, timeout = self._prepare_call(ctxt, method, kwargs)
        msg_id = wire.new_id()
        chunks = handles.Stream(
            self.transport,
            msg_id,
            method,
            timeout,
            self.call_monitor_timeout,
            ctxt,
            self.serializer,
            window,
        )
        options = wire.CallOptions(announce=True, window=window)
        self._send_watched(message, context, msg_id, chunks, options, timeout)
        return chunks

    def _send_watched(
        self,
        message: dict[str, Any],
        context: Any,
        msg_id: str,
        watcher: Any,
        options: wire.CallOptions,
        timeout: float,
    ) -> None:
        send = getattr(self.transport, "_send_watched", None)
        if send is None:  # a duck-typed transport
            raise exceptions.ConfigurationError(
                f"{type(self.transport).__name__} cannot make asynchronous or streamed calls"
            )
        try:
            send(
                self.target,
                context,
                message,
                msg_id,
                watcher,
                options,
                timeout,
                call_monitor_timeout=self.call_monitor_timeout,
                retry=self.retry,
                transport_options=self.transport_options,
            )
        except exceptions.TransportDriverError as exc:
            raise ClientSendError(self.target, exc) from exc

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target!r} timeout={self.timeout}>"


_CallSettings._context_class = _CallContext


class RPCClient(_CallContext):
    """Sends calls and casts to RPC servers.

    :param transport: from :func:`~rpcframe.get_rpc_transport`.
    :param target: the default target of calls and casts.
    :param timeout: seconds a call waits for its reply (default:
        ``rpc_response_timeout``); also bounds how long a cast may wait for
        the transport to take the request.
    :param version_cap: refuse to send versions above this.
    :param serializer: converts arguments, results and the context.
    :param retry: reconnection attempts while sending: None or -1 without
        limit, 0 none, N at most N; then MessageDeliveryFailure.
    :param call_monitor_timeout: ask the server for heartbeats at least this
        often during a call, and fail the call sooner if they stop.
    :param transport_options: :class:`~rpcframe.TransportOptions`.
    """

    def __init__(
        self,
        transport: msg_transport.Transport,
        target: Target,
        timeout: float | None = None,
        version_cap: str | None = None,
        serializer: msg_serializer.Serializer | None = None,
        retry: int | None = None,
        call_monitor_timeout: float | None = None,
        transport_options: msg_transport.TransportOptions | None = None,
        _manual_load: bool = True,
    ) -> None:
        if _manual_load:
            LOG.warning(
                "Using RPCClient manually to instantiate client. "
                "Please use get_rpc_client to obtain an RPC client instance."
            )
        if not isinstance(transport, msg_transport.RPCTransport):
            LOG.warning(
                "Using notification transport for RPC. Please use "
                "get_rpc_transport to obtain an RPC transport instance."
            )
        super().__init__(
            transport,
            target,
            serializer or msg_serializer.NoOpSerializer(),
            timeout,
            version_cap,
            retry,
            call_monitor_timeout,
            transport_options,
        )


def get_rpc_client(
    transport: msg_transport.Transport,
    target: Target,
    client_cls: type[RPCClient] = RPCClient,
    **kwargs: Any,
) -> RPCClient:
    """Build an RPC client; keyword arguments are :class:`RPCClient`'s."""
    return client_cls(transport, target, _manual_load=False, **kwargs)


def _check_seconds(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")


def _check_window(window: Any) -> None:
    if (
        isinstance(window, bool)
        or not isinstance(window, int)
        or not (1 <= window <= wire.calls.MAX_WINDOW)
    ):
        raise ValueError(
            f"window must be an integer from 1 to {wire.calls.MAX_WINDOW}, got {window!r}"
        )
