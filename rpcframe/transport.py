"""Transports: the driver a URL names, and what the core keeps per transport.

A :class:`Transport` is the handle services pass to clients, servers,
notifiers and listeners. It owns one driver instance (found through the
``rpcframe.drivers`` entry point named by the URL's scheme) and, for RPC, one
reply inbox shared by every client built on it. Transports are safe to share
between threads; ``cleanup()`` releases everything they hold.

URLs (:class:`TransportURL`, :class:`TransportHost`) are parsed in
:mod:`rpcframe.url` and re-exported here under oslo.messaging's import path.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from rpcframe import confread, exceptions, identity, leniency, options, redaction, wire
from rpcframe.drivers import base
from rpcframe.replies import ReplyWaiter, Watcher
from rpcframe.url import TransportHost, TransportURL

__all__ = [
    "DriverLoadFailure",
    "InvalidTransportURL",
    "NotificationTransport",
    "RPCTransport",
    "Transport",
    "TransportHost",
    "TransportCore",
    "TransportOptions",
    "TransportURL",
    "get_notification_transport",
    "get_rpc_transport",
    "get_transport",
    "load_driver",
    "set_transport_defaults",
]

LOG = logging.getLogger(__name__)

DriverLoadFailure = exceptions.DriverLoadFailure
InvalidTransportURL = exceptions.InvalidTransportURL

DRIVER_NAMESPACE = "rpcframe.drivers"

#: oslo.messaging's name for the options set_transport_defaults() changes.
_transport_opts = options.transport_opts


def set_transport_defaults(control_exchange: str) -> None:
    """Set the default ``control_exchange`` for every ConfigOpts registered later."""
    cfg.set_defaults(options.transport_opts, control_exchange=control_exchange)


class TransportOptions:
    """Per-client transport options. ``at_least_once`` makes sends mandatory:
    a message no queue takes raises MessageUndeliverable instead of vanishing."""

    def __init__(self, at_least_once: bool = False) -> None:
        self._at_least_once = at_least_once

    @property
    def at_least_once(self) -> bool:
        return self._at_least_once

    def __repr__(self) -> str:
        return f"<TransportOptions at_least_once={self._at_least_once}>"


class TransportCore:
    """What a transport is without its I/O: a driver, its URL, targets made addresses.

    Shared by :class:`Transport` (threads) and
    :class:`rpcframe.aio.transport.AsyncTransport` (asyncio): both turn
    targets into the same driver addresses, rebuild the same remote errors
    and refuse the same missing features.
    """

    def __init__(self, driver: Any) -> None:
        self.conf = driver.conf
        self._driver = driver
        # The lenient fake hands objects over beside the body (rpcframe.leniency).
        self._passes_objects = driver.capabilities.passes_objects
        # How a server's replies go out: mandatory (so that they can be sent
        # again) where an inbox can come back, written and not waited for
        # where it cannot (see Capabilities.lasting_inboxes).
        self._reply_options: dict[str, bool] = (
            {"mandatory": True} if driver.capabilities.lasting_inboxes else {"confirm": False}
        )
        #: Modules whose exceptions callers may rebuild (set by the factories).
        self.allowed_remote_exmods: list[str] = []

    @property
    def url(self) -> TransportURL:
        return self._driver.url

    @property
    def capabilities(self) -> base.Capabilities:
        """What the driver can do (see :class:`~rpcframe.drivers.base.Capabilities`)."""
        return self._driver.capabilities

    def _address(self, target: Any, kind: str = base.RPC) -> base.Address:
        if not target.topic:
            raise exceptions.InvalidTarget("A topic is required to send", target)
        return base.Address(
            target.exchange or confread.value(self.conf, "control_exchange"),
            target.topic,
            target.server,
            bool(target.fanout),
            kind,
        )

    def _server_addresses(self, target: Any) -> list[base.Address]:
        """A server's topic, its own queue and (where the driver has it) the fanout."""
        if not (target.topic and target.server):
            raise exceptions.InvalidTarget(
                "A server's target must have topic and server names specified", target
            )
        exchange = target.exchange or confread.value(self.conf, "control_exchange")
        addresses = [
            base.Address(exchange, target.topic),
            base.Address(exchange, target.topic, server=target.server),
        ]
        if self.capabilities.fanout:
            addresses.append(base.Address(exchange, target.topic, fanout=True))
        return addresses

    def _cast_body(self, ctxt: Any, message: dict[str, Any]) -> bytes:
        """A cast's body: oslo's request dict, the context, this process as ``_sender``."""
        return _encode_request(message, ctxt, extra={wire.SENDER_KEY: identity.local_wire()})

    def _call_body(
        self,
        ctxt: Any,
        message: dict[str, Any],
        msg_id: str,
        reply_q: str,
        timeout: float,
        call_monitor_timeout: float | None,
        call_options: wire.CallOptions | None = None,
    ) -> bytes:
        """A call's body: routing fields, the deadline ``timeout`` from now, the sender,
        and rpcframe's ``_rpcframe`` extensions when ``call_options`` are given."""
        extra: dict[str, Any] = {wire.SENDER_KEY: identity.local_wire()}
        if call_options is not None:
            extra[wire.calls.KEY] = call_options.to_wire()
        return _encode_request(
            message,
            ctxt,
            msg_id=msg_id,
            reply_q=reply_q,
            monitor_timeout=call_monitor_timeout,
            deadline=time.time() + timeout,
            extra=extra,
        )

    def _notification(
        self, target: Any, ctxt: Any, message: dict[str, Any], version: float
    ) -> tuple[base.Address, bytes]:
        """Where a notification goes (``<topic>.<priority>``) and its body.

        ``version`` 2.0 is oslo's envelope, 1.0 the bare message.
        """
        address = self._address(target, base.NOTIFY)
        sender = identity.local_wire(message.get("publisher_id"))
        context = redaction.context_to_send(ctxt)
        body = wire.encode_notification(message, context, envelope=version == 2.0, sender=sender)
        return address, body

    def _notification_addresses(
        self, targets_and_priorities: Iterable[tuple[Any, str]]
    ) -> list[base.Address]:
        addresses = []
        for target, priority in targets_and_priorities:
            if not target.topic:
                raise exceptions.InvalidTarget("A target must have topic specified", target)
            addresses.append(
                base.Address(
                    target.exchange or confread.value(self.conf, "control_exchange"),
                    f"{target.topic}.{priority}",
                    kind=base.NOTIFY,
                )
            )
        return addresses

    def _outcome(self, reply: wire.Reply) -> Any:
        """The result a final reply carries; raises the remote exception it carries."""
        if reply.failure is not None:
            error = wire.deserialize_remote_exception(reply.failure, self.allowed_remote_exmods)
            if reply.attachments is not None:
                error = leniency.exception(reply.attachments, error)
            raise error
        if reply.attachments is not None:
            return leniency.result(reply.attachments, reply.result)
        return reply.result

    def _default_timeout(self) -> float:
        configured = confread.value(self.conf, "rpc_response_timeout")
        # oslo.messaging waits forever when the option is overridden to None;
        # here every wait has a deadline, so None means the option's default.
        return float(_DEFAULT_RESPONSE_TIMEOUT if configured is None else configured)

    def _require_driver_features(
        self,
        requeue: bool = False,
        pool: bool = False,
        fanout: bool = False,
        mandatory: bool = False,
    ) -> None:
        """Raise ConfigurationError naming the first feature asked for that the driver lacks.

        Clients ask for ``fanout`` (a fanout target) and ``mandatory``
        (``TransportOptions(at_least_once=True)``), notification listeners for
        ``requeue`` and ``pool``; each checks when it is built, and clients
        again when they send (a Target can be changed in between).
        """
        caps = self._driver.capabilities
        wanted = (
            (requeue, caps.requeue, "cannot requeue messages; build the listener with "
             "allow_requeue=False"),
            (pool, caps.pools, "does not support listener pools"),
            (fanout, caps.fanout, "cannot fan a cast out to every server of a topic"),
            (mandatory, caps.mandatory, "cannot tell whether a message reached a queue, "
             "so it cannot send at_least_once"),
        )  # fmt: skip
        for asked, able, why in wanted:
            if asked and not able:
                raise exceptions.ConfigurationError(f"the {self.url.transport!r} transport {why}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._driver.url.masked()}>"


class Transport(TransportCore):
    """A messaging transport: a driver plus what the core keeps per transport.

    Build one with :func:`get_rpc_transport` or
    :func:`get_notification_transport`. ``conf`` is the ConfigOpts it was
    built from.

    This class is the one place where the core meets a driver: nothing else
    in rpcframe holds a driver or calls it. What the core asks of a transport
    is the methods under "the core's interface to the driver" below. The
    first four have oslo.messaging's names and arguments (so unit tests that
    replace them with a mock, as oslo's own and many services' do, see what
    they expect): :meth:`_send` a request (and for a call, wait for its reply),
    :meth:`_send_notification`, :meth:`_listen` for a server's requests and
    :meth:`_listen_for_notifications`. Servers add :meth:`_send_reply` and
    :meth:`_detached_sender` for replies and call-monitor heartbeats, and
    :meth:`_require_driver_features` to refuse what the driver cannot do.
    They turn targets into driver addresses and messages into bodies; the
    driver only moves bytes.
    """

    _driver: base.Driver

    def __init__(self, driver: base.Driver) -> None:
        super().__init__(driver)
        self._lock = threading.Lock()
        self._waiter: ReplyWaiter | None = None
        self._cleaned = False

    # -- the core's interface to the driver ----------------------------------

    def _send(
        self,
        target: Any,
        ctxt: Any,
        message: dict[str, Any],
        wait_for_reply: bool | None = None,
        timeout: float | None = None,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: TransportOptions | None = None,
    ) -> Any:
        """Send a request; for a call (``wait_for_reply``) return the reply's result.

        ``message`` is oslo's request dict (``method``, ``args``, optional
        ``namespace`` and ``version``) with arguments already serialized;
        ``ctxt`` the serialized context. A cast returns once the transport
        owns the request (waiting at most ``timeout``, or
        ``rpc_response_timeout``). A call raises the remote exception or
        MessagingTimeout after ``timeout`` seconds (``rpc_response_timeout``
        when None); ``timeout=0`` gives up at once.
        """
        address = self._address(target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        if timeout is None:
            timeout = self._default_timeout()
        more: dict[str, Any] = {"attachments": {"context": ctxt}} if self._passes_objects else {}
        if not wait_for_reply:
            body = self._cast_body(ctxt, message)
            self._driver.send(
                address, body, mandatory=mandatory, retry=retry, timeout=timeout, **more
            )
            return None
        waiter = self._reply_waiter()
        msg_id = wire.new_id()
        body = self._call_body(
            ctxt, message, msg_id, waiter.address.topic, timeout, call_monitor_timeout
        )
        started = time.monotonic()
        waiter.register(msg_id)
        try:
            self._driver.send(
                address,
                body,
                expiry=timeout or None,
                mandatory=mandatory,
                retry=retry,
                timeout=timeout,
                # The reply proves delivery; a broker confirm would only add latency.
                confirm=mandatory,
                **more,
            )
            # One deadline for the whole call: time spent sending (reconnecting
            # to a broker, say) comes off the time left to wait for the reply.
            left = max(0.0, timeout - (time.monotonic() - started))
            reply = waiter.wait(msg_id, left, call_monitor_timeout)
        except exceptions.MessagingTimeout as exc:
            exc.method, exc.target = message.get("method"), target
            if exc.timeout != call_monitor_timeout:
                exc.timeout = timeout  # the call's timeout, not what was left of it
            raise
        finally:
            waiter.unregister(msg_id)
        return self._outcome(reply)

    def _send_watched(
        self,
        target: Any,
        ctxt: Any,
        message: dict[str, Any],
        msg_id: str,
        watcher: Watcher,
        call_options: wire.CallOptions,
        timeout: float,
        call_monitor_timeout: float | None = None,
        retry: int | None = None,
        transport_options: TransportOptions | None = None,
    ) -> None:
        """Send a call whose replies go to ``watcher`` instead of a waiting caller.

        For :meth:`~rpcframe.RPCClient.call_async` and
        :meth:`~rpcframe.RPCClient.stream`: ``watcher`` is watched under
        ``msg_id`` before the request leaves, and is no longer watched if
        sending fails (the error is raised here). ``call_options`` go into the
        request's ``_rpcframe`` key.
        """
        address = self._address(target)
        mandatory = bool(transport_options and transport_options.at_least_once)
        waiter = self._reply_waiter()
        more: dict[str, Any] = {"attachments": {"context": ctxt}} if self._passes_objects else {}
        body = self._call_body(
            ctxt,
            message,
            msg_id,
            waiter.address.topic,
            timeout,
            call_monitor_timeout,
            call_options,
        )
        waiter.watch(msg_id, watcher)
        try:
            self._driver.send(
                address,
                body,
                expiry=timeout or None,
                mandatory=mandatory,
                retry=retry,
                timeout=timeout,
                confirm=mandatory,
                **more,
            )
        except BaseException:
            waiter.unwatch(msg_id)
            raise

    def _watch(self, msg_id: str, watcher: Watcher) -> base.Address:
        """Watch ``msg_id`` on this transport's inbox; return the inbox's address.

        A server uses it for the control channel of a call it runs (a cancel,
        a stream's credit), which callers reach with :meth:`_send_control`.
        """
        waiter = self._reply_waiter()
        address = waiter.address
        waiter.watch(msg_id, watcher)
        return address

    def _unwatch(self, msg_id: str) -> None:
        waiter = self._waiter
        if waiter is not None:
            waiter.unwatch(msg_id)

    def _send_control(self, inbox: str, control_id: str, timeout: float, **fields: Any) -> None:
        """Send a control message (credit, resume, cancel) to a server's call; mandatory."""
        address = base.Address("", inbox, kind=base.REPLY)
        body = wire.encode_control(control_id, **fields)
        self._driver.send(address, body, mandatory=True, timeout=timeout)

    def _send_notification(
        self, target: Any, ctxt: Any, message: dict[str, Any], version: float, retry: Any = None
    ) -> None:
        """Send a notification to ``target`` (topic ``<topic>.<priority>``).

        ``version`` 2.0 sends oslo's envelope, 1.0 the bare message. Returns
        once the transport owns it, waiting at most ``rpc_response_timeout``.
        """
        address, body = self._notification(target, ctxt, message, version)
        more: dict[str, Any] = {"attachments": {"context": ctxt}} if self._passes_objects else {}
        self._driver.send(address, body, retry=retry, timeout=self._default_timeout(), **more)

    def _send_reply(
        self,
        address: base.Address,
        body: bytes,
        timeout: float,
        attachments: dict[str, Any] | None = None,
        reply_ref: str | None = None,
    ) -> None:
        """Send an encoded reply (or call-monitor heartbeat) to a caller's inbox.

        Mandatory where inboxes can come back (``lasting_inboxes``): raises
        MessageUndeliverable while the inbox is missing (after a broker
        restart, until the caller declares it again), so the server can
        retry. Elsewhere it returns once the reply is written (an inbox
        missing there is closed for good). Other failures as
        :meth:`Driver.send`. Waits at most ``timeout``.
        ``reply_ref`` is the request's :attr:`~rpcframe.drivers.base.IncomingMessage.reply_ref`,
        given with the reply that ends the call (not with a heartbeat).
        """
        more: dict[str, Any] = {} if attachments is None else {"attachments": attachments}
        if reply_ref is not None:
            more["reply_ref"] = reply_ref
        self._driver.send(address, body, timeout=timeout, **self._reply_options, **more)

    def _send_chunk(self, address: base.Address, body: bytes, timeout: float) -> None:
        """Send a stream's chunk to a caller's inbox without waiting for a confirm.

        A stream's credit proves delivery, and its server keeps every chunk
        until it is credited, sending again what the caller asks for: a
        chunk lost on the way costs a resend, never the stream. So chunks
        are not mandatory and go out as fast as the window lets them.
        """
        self._driver.send(address, body, timeout=timeout, confirm=False)

    def _detached_sender(
        self, address: base.Address, timeout: float
    ) -> Callable[[bytes], bool] | None:
        """A sender for ``address`` that works while the green hub is blocked, or None.

        See :meth:`Driver.detached_sender`: in an eventlet-patched process,
        heartbeats must go out while an endpoint blocks the hub.
        """
        return self._driver.detached_sender(address, timeout)

    def _listen(
        self, target: Any, batch_size: int | None = None, batch_timeout: float | None = None
    ) -> base.Listener:
        """Subscribe to a server's requests: its topic, its own queue and the fanout."""
        return self._driver.listen(self._server_addresses(target))

    def _listen_for_notifications(
        self,
        targets_and_priorities: Iterable[tuple[Any, str]],
        pool: str | None,
        batch_size: int | None = None,
        batch_timeout: float | None = None,
    ) -> base.Listener:
        """Subscribe to ``<topic>.<priority>`` of every pair, shared with ``pool``."""
        return self._driver.listen(self._notification_addresses(targets_and_priorities), pool=pool)

    def _reply_waiter(self) -> ReplyWaiter:
        """The transport's reply inbox, opened on first use."""
        waiter = self._waiter
        if waiter is not None:
            return waiter
        with self._lock:
            if self._cleaned:
                raise exceptions.TransportClosed("the transport was cleaned up")
            if self._waiter is None:
                self._waiter = ReplyWaiter(
                    self._driver.open_inbox, self.allowed_remote_exmods, self._passes_objects
                )
            return self._waiter

    def cleanup(self) -> None:
        """Release the reply inbox, every listener and every connection. Idempotent."""
        with self._lock:
            if self._cleaned:
                return
            self._cleaned = True
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.close()
        self._driver.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cleanup()


#: rpc_response_timeout's own default, for a configuration that overrides it to None.
_DEFAULT_RESPONSE_TIMEOUT = next(
    o.default for o in options.client_opts if o.dest == "rpc_response_timeout"
)


def _encode_request(message: dict[str, Any], ctxt: Any, **fields: Any) -> bytes:
    try:
        return wire.encode_request_message(message, ctxt, **fields)
    except (TypeError, ValueError) as exc:
        raise _explain_encoding_error(message, exc) from None


def _explain_encoding_error(message: dict[str, Any], exc: Exception) -> Exception:
    """Name the argument that cannot be sent, for a clear error."""
    method = message.get("method")
    for name, value in (message.get("args") or {}).items():
        try:
            wire.encode({"x": value})
        except (TypeError, ValueError) as inner:
            return TypeError(f"argument {name!r} of RPC method {method!r} cannot be sent: {inner}")
    return TypeError(f"RPC method {method!r}: the request cannot be sent: {exc}")


class RPCTransport(Transport):
    """A transport for RPC clients and servers."""


class NotificationTransport(Transport):
    """A transport for notifiers and notification listeners."""


def load_driver(conf: cfg.ConfigOpts, url: str | TransportURL | None = None) -> base.Driver:
    """Load the driver ``url`` names, on its own, outside any transport.

    For driver tests and tools that talk to a driver directly (the contract
    suite, :mod:`rpcframe.testing.contract`); services use the transport
    factories. The caller closes the driver. Raises DriverLoadFailure.
    """
    options.register_core(conf)
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(conf, url)
    return _load_driver(conf, url)


def _load_driver(
    conf: cfg.ConfigOpts,
    url: TransportURL,
    namespace: str = DRIVER_NAMESPACE,
    kind: type[Any] = base.Driver,
) -> Any:
    """The driver the URL's scheme names under ``namespace``, built; it must be a ``kind``."""
    name = (url.transport or "").split("+")[0]
    try:
        manager: stevedore_driver.DriverManager = stevedore_driver.DriverManager(
            namespace, name, invoke_on_load=True, invoke_args=(conf, url)
        )
    except stevedore_exception.NoMatches:
        installed = ", ".join(available_drivers(namespace)) or "none"
        raise DriverLoadFailure(name, f"no driver named {name!r}; installed: {installed}") from None
    except ImportError as exc:
        raise DriverLoadFailure(
            name, f"{exc}; install its extra, e.g. pip install 'rpcframe[{name}]'"
        ) from exc
    driver = manager.driver
    if not isinstance(driver, kind):
        raise DriverLoadFailure(name, f"{type(driver).__name__} is not an rpcframe {kind.__name__}")
    return driver


def available_drivers(namespace: str = DRIVER_NAMESPACE) -> list[str]:
    """Names under the ``rpcframe.drivers`` entry point (or ``namespace``)."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=namespace)})


def _get_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None,
    allowed_remote_exmods: Iterable[str] | None,
    transport_cls: type[Transport],
) -> Transport:
    if not isinstance(conf, cfg.ConfigOpts):
        raise TypeError(f"conf must be an oslo.config ConfigOpts, got {type(conf).__name__}")
    options.register_core(conf)
    if not isinstance(url, TransportURL):
        url = TransportURL.parse(conf, url)
    driver = _load_driver(conf, url)
    LOG.debug("Loaded %s driver for %s", url.transport, url.masked())
    transport = transport_cls(driver)
    transport.allowed_remote_exmods = list(allowed_remote_exmods or [])
    return transport


def get_rpc_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
    transport_cls: type[Transport] = RPCTransport,
) -> Transport:
    """Build an RPC transport from ``url``, or ``conf.transport_url`` without one.

    :param allowed_remote_exmods: modules whose exceptions a caller may
        rebuild from a remote error (builtins always may).
    """
    return _get_transport(conf, url, allowed_remote_exmods, transport_cls)


def get_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
) -> Transport:
    """Deprecated, as in oslo.messaging: use get_rpc_transport or get_notification_transport."""
    warnings.warn(
        "get_transport() is deprecated; use get_rpc_transport() or get_notification_transport()",
        DeprecationWarning,
        stacklevel=2,
    )
    return _get_transport(conf, url, allowed_remote_exmods, RPCTransport)


def get_notification_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None = None,
    allowed_remote_exmods: Iterable[str] | None = None,
) -> Transport:
    """Build a notification transport.

    Without ``url`` it uses ``[oslo_messaging_notifications] transport_url``,
    and without that the RPC ``transport_url``.
    """
    options.register_notifications(conf)
    if url is None:
        url = conf.oslo_messaging_notifications.transport_url
    return _get_transport(conf, url, allowed_remote_exmods, NotificationTransport)
