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

import enum
import logging
import time
from typing import Any

from rpcframe import exceptions, identity, versions, wire
from rpcframe import serializer as msg_serializer
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.target import Target

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


class _Unset(enum.Enum):
    """Typed 'keep the current value' marker for prepare()."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset.UNSET

_TARGET_FIELDS = ("exchange", "topic", "namespace", "version", "server", "fanout")


class _CallContext:
    """A target plus call settings; what ``prepare()`` returns.

    Holds no mutable state, so one context may be used by many threads.
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
        if not isinstance(target, Target):
            raise TypeError(f"target must be a rpcframe Target, got {type(target).__name__}")
        if version_cap is not None:
            try:
                versions.parse_version(version_cap)
            except ValueError as exc:
                raise exceptions.MessagingException(f"bad version_cap: {exc}") from None
        _check_seconds("timeout", timeout)
        _check_seconds("call_monitor_timeout", call_monitor_timeout)
        if retry is not None and (not isinstance(retry, int) or retry < -1):
            raise ValueError(f"retry must be None, -1 or a count >= 0, got {retry!r}")
        self.conf = transport.conf
        self.transport = transport
        self.target = target
        self.serializer = serializer
        self.timeout = timeout
        self.version_cap = version_cap
        self.retry = retry
        self.call_monitor_timeout = call_monitor_timeout
        self.transport_options = transport_options

    # -- derivation ---------------------------------------------------------

    def prepare(
        self,
        exchange: str | None | _Unset = UNSET,
        topic: str | None | _Unset = UNSET,
        namespace: str | None | _Unset = UNSET,
        version: str | None | _Unset = UNSET,
        server: str | None | _Unset = UNSET,
        fanout: bool | None | _Unset = UNSET,
        timeout: float | None | _Unset = UNSET,
        version_cap: str | None | _Unset = UNSET,
        retry: int | None | _Unset = UNSET,
        call_monitor_timeout: float | None | _Unset = UNSET,
        transport_options: msg_transport.TransportOptions | None | _Unset = UNSET,
    ) -> _CallContext:
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
        return _CallContext(
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

    def can_send_version(self, version: str | None | _Unset = UNSET) -> bool:
        """Whether ``version`` (default: the target's) is within the version cap."""
        requested = self.target.version if version is UNSET else version
        return versions.is_compatible(self.version_cap, requested)  # type: ignore[arg-type]

    def _check_version_cap(self, version: str | None) -> None:
        if self.version_cap is not None and not versions.is_compatible(self.version_cap, version):
            raise RPCVersionCapError(version=version, version_cap=self.version_cap)

    # -- sending --------------------------------------------------------------

    def _address(self) -> base.Address:
        target = self.target
        if not target.topic:
            raise exceptions.InvalidTarget("A topic is required to send", target)
        return base.Address(
            target.exchange or self.conf.control_exchange,
            target.topic,
            target.server,
            bool(target.fanout),
        )

    def _serialize(self, ctxt: Any, method: str, kwargs: dict[str, Any]) -> tuple[dict, Any]:
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        ser = self.serializer
        args = {name: ser.serialize_entity(ctxt, value) for name, value in kwargs.items()}
        return args, ser.serialize_context(ctxt)

    def _encode(self, method: str, args: dict, context: Any, **fields: Any) -> bytes:
        try:
            return wire.encode_request(
                method,
                args,
                context,
                namespace=self.target.namespace,
                version=self.target.version,
                extra={wire.SENDER_KEY: identity.local_wire()},
                **fields,
            )
        except (TypeError, ValueError) as exc:
            raise _explain_encoding_error(method, args, context, exc) from None

    def _effective_timeout(self) -> float:
        return self.timeout if self.timeout is not None else float(self.conf.rpc_response_timeout)

    def cast(self, ctxt: Any, method: str, **kwargs: Any) -> None:
        """Invoke ``method`` on a server and return once the transport owns the request.

        No result comes back. With ``fanout`` the request goes to every
        server listening on the topic. Raises MessagingTimeout if the
        transport did not take the request within the client's timeout,
        MessageDeliveryFailure when ``retry`` is exhausted, and
        ClientSendError for other transport failures.
        """
        address = self._address()
        self._check_version_cap(self.target.version)
        args, context = self._serialize(ctxt, method, kwargs)
        body = self._encode(method, args, context)
        mandatory = bool(self.transport_options and self.transport_options.at_least_once)
        try:
            self.transport._driver.send(
                address,
                body,
                mandatory=mandatory,
                retry=self.retry,
                timeout=self._effective_timeout(),
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
        target = self.target
        if target.fanout:
            raise exceptions.InvalidTarget("A call cannot be used with fanout", target)
        address = self._address()
        self._check_version_cap(target.version)
        args, context = self._serialize(ctxt, method, kwargs)
        timeout = self._effective_timeout()
        monitor = self.call_monitor_timeout
        waiter = self.transport._reply_waiter()
        msg_id = wire.new_id()
        body = self._encode(
            method,
            args,
            context,
            msg_id=msg_id,
            reply_q=waiter.address.topic,
            monitor_timeout=monitor,
            deadline=time.time() + timeout,
        )
        mandatory = bool(self.transport_options and self.transport_options.at_least_once)
        started = time.monotonic()
        waiter.register(msg_id)
        try:
            try:
                self.transport._driver.send(
                    address,
                    body,
                    expiry=timeout,
                    mandatory=mandatory,
                    retry=self.retry,
                    timeout=timeout,
                    # The reply proves delivery; a broker confirm would only add latency.
                    confirm=mandatory,
                )
            except exceptions.TransportDriverError as exc:
                raise ClientSendError(target, exc) from exc
            # One deadline for the whole call: time spent sending (reconnecting
            # to a broker, say) comes off the time left to wait for the reply.
            left = max(0.0, timeout - (time.monotonic() - started))
            reply = waiter.wait(msg_id, left, monitor)
        except exceptions.MessagingTimeout as exc:
            exc.method, exc.target = method, target
            if exc.timeout != monitor:
                exc.timeout = timeout  # the call's timeout, not what was left of it
            raise
        finally:
            waiter.unregister(msg_id)
        if reply.failure is not None:
            raise wire.deserialize_remote_exception(reply.failure, waiter.allowed_remote_exmods)
        return self.serializer.deserialize_entity(ctxt, reply.result)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.target!r} timeout={self.timeout}>"


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
        if not isinstance(transport, msg_transport.Transport):
            raise TypeError(
                f"transport must come from get_rpc_transport(), got {type(transport).__name__}"
            )
        if isinstance(transport, msg_transport.NotificationTransport):
            LOG.warning("Using a notification transport for RPC; use get_rpc_transport() instead")
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
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def _explain_encoding_error(method: str, args: dict, context: Any, exc: Exception) -> Exception:
    """Name the argument that cannot be sent, for a clear error."""
    for name, value in args.items():
        try:
            wire.encode({"x": value})
        except (TypeError, ValueError) as inner:
            return TypeError(f"argument {name!r} of RPC method {method!r} cannot be sent: {inner}")
    return TypeError(f"RPC method {method!r}: the request cannot be sent: {exc}")
