"""Transports: a parsed URL, the driver it names, and the shared reply inbox.

A :class:`Transport` is the handle services pass to clients, servers,
notifiers and listeners. It owns one driver instance (found through the
``rpcframe.drivers`` entry point named by the URL's scheme) and, for RPC, one
reply inbox shared by every client built on it. Transports are safe to share
between threads; ``cleanup()`` releases everything they hold.

URLs have oslo.messaging's form::

    driver://[user:pass@]host:port[,[userN:passN@]hostN:portN]/virtual_host?query

Credentials never appear in ``repr()``, logs or error messages; ``str()``
gives the full URL back, as oslo.messaging does, for code that rebuilds it.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib import parse

from oslo_config import cfg
from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from rpcframe import exceptions, opts
from rpcframe.drivers import base

if TYPE_CHECKING:
    from rpcframe.rpc.replies import ReplyWaiter

__all__ = [
    "DriverLoadFailure",
    "InvalidTransportURL",
    "NotificationTransport",
    "RPCTransport",
    "Transport",
    "TransportHost",
    "TransportOptions",
    "TransportURL",
    "get_notification_transport",
    "get_rpc_transport",
    "get_transport",
    "set_transport_defaults",
]

LOG = logging.getLogger(__name__)

DriverLoadFailure = exceptions.DriverLoadFailure
InvalidTransportURL = exceptions.InvalidTransportURL

DRIVER_NAMESPACE = "rpcframe.drivers"


def set_transport_defaults(control_exchange: str) -> None:
    """Set the default ``control_exchange`` for every ConfigOpts registered later."""
    cfg.set_defaults(opts.transport_opts, control_exchange=control_exchange)


class TransportHost:
    """One host of a transport URL."""

    def __init__(
        self,
        hostname: str | None = None,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.hostname = hostname
        self.port = port
        self.username = username
        self.password = password

    def __hash__(self) -> int:
        return hash((self.hostname, self.port, self.username, self.password))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TransportHost) and vars(self) == vars(other)

    def __repr__(self) -> str:
        shown = []
        for name in ("hostname", "port", "username"):
            value = getattr(self, name)
            if value:
                shown.append(f"{name}={value!r}")
        if self.password:
            shown.append("password='****'")
        return "<TransportHost " + ", ".join(shown) + ">"


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


class TransportURL:
    """A parsed transport URL (see the module documentation for the form).

    :param conf: the ConfigOpts the transport will use.
    :param transport: the driver name, e.g. ``"rabbit"`` or ``"fake"``.
    :param virtual_host: the virtual host, e.g. ``"/"``.
    :param hosts: a list of :class:`TransportHost`.
    :param query: driver options that override the configuration file.
    """

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        transport: str | None = None,
        virtual_host: str | None = None,
        hosts: list[TransportHost] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        self.conf = conf
        opts.register_core(conf)
        self.transport = transport
        self.virtual_host = virtual_host
        self.hosts = [] if hosts is None else hosts
        self.query = {} if query is None else query

    def __hash__(self) -> int:
        return hash((tuple(self.hosts), self.transport, self.virtual_host))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TransportURL)
            and self.transport == other.transport
            and self.virtual_host == other.virtual_host
            and self.hosts == other.hosts
        )

    def _format(self, mask: bool) -> str:
        netlocs = []
        for host in self.hosts:
            netloc = ""
            if host.username is not None or host.password is not None:
                if host.username is not None:
                    netloc += parse.quote(host.username, "")
                if host.password is not None:
                    netloc += ":" + ("****" if mask else parse.quote(host.password, ""))
                netloc += "@"
            if host.hostname:
                netloc += f"[{host.hostname}]" if ":" in host.hostname else host.hostname
            if host.port is not None:
                netloc += f":{host.port}"
            netlocs.append(netloc)
        url = f"{self.transport}://{','.join(netlocs)}/"
        if self.virtual_host:
            url += parse.quote(self.virtual_host)
        if self.query:
            url += "?" + parse.urlencode(self.query, doseq=True)
        return url

    def __str__(self) -> str:
        return self._format(mask=False)

    def masked(self) -> str:
        """The URL with every password replaced by ``****``: safe to log."""
        return self._format(mask=True)

    def __repr__(self) -> str:
        return f"<TransportURL {self.masked()}>"

    @classmethod
    def parse(cls, conf: cfg.ConfigOpts, url: str | None = None) -> TransportURL:
        """Parse ``url`` (default: ``conf.transport_url``).

        Raises InvalidTransportURL saying what is wrong: not a string, no
        scheme, a bad port. Credentials are never part of the message.
        """
        opts.register_core(conf)
        url = url or conf.transport_url
        if not isinstance(url, str):
            raise InvalidTransportURL(
                url, f"a transport URL must be a string, got {type(url).__name__}"
            )
        parsed = parse.urlparse(url)
        if not parsed.scheme:
            raise InvalidTransportURL(
                _mask_raw(url),
                f"transport URL {_mask_raw(url)!r} has no driver scheme "
                "(expected driver://[user:pass@]host:port/virtual_host)",
            )
        query: dict[str, str] = {}
        if parsed.query:
            for key, values in parse.parse_qs(parsed.query, keep_blank_values=True).items():
                query[key] = ",".join(values)
        virtual_host = None
        if parsed.path.startswith("/"):
            virtual_host = parse.unquote(parsed.path[1:])
        hosts = []
        for netloc in parsed.netloc.split(","):
            if not netloc:
                continue
            username = password = None
            hostport = netloc
            if "@" in netloc:
                credentials, hostport = netloc.rsplit("@", 1)
                if ":" in credentials:
                    username, password = credentials.split(":", 1)
                    password = parse.unquote(password)
                else:
                    username = credentials
                username = parse.unquote(username)
            hostname, port = _split_host_port(hostport, url)
            hosts.append(TransportHost(hostname, port, username, password))
        return cls(conf, parsed.scheme, virtual_host, hosts, query)


def _mask_raw(url: str) -> str:
    """Mask passwords in a URL string that may not parse."""
    try:
        scheme, rest = url.split("://", 1)
    except ValueError:
        return url.rsplit("@", maxsplit=1)[-1]
    netloc, sep, tail = rest.partition("/")
    masked = []
    for host in netloc.split(","):
        credentials, at, hostport = host.rpartition("@")
        if at and ":" in credentials:
            user = credentials.split(":", 1)[0]
            masked.append(f"{user}:****@{hostport}")
        else:
            masked.append(host)
    return f"{scheme}://{','.join(masked)}{sep}{tail}"


def _split_host_port(hostport: str, url: str) -> tuple[str | None, int | None]:
    if hostport.startswith("["):
        hostname, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif hostport.count(":") == 1:
        hostname, port_text = hostport.split(":")
    else:
        hostname, port_text = hostport, ""
    port = None
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise InvalidTransportURL(
                _mask_raw(url), f"bad port {port_text!r} in transport URL {_mask_raw(url)!r}"
            )
        port = int(port_text)
    return hostname or None, port


class Transport:
    """A messaging transport: a driver plus what the core keeps per transport.

    Build one with :func:`get_rpc_transport` or
    :func:`get_notification_transport`. ``conf`` is the ConfigOpts it was
    built from.
    """

    def __init__(self, driver: base.Driver) -> None:
        self.conf = driver.conf
        self._driver = driver
        #: Modules whose exceptions callers may rebuild (set by the factories).
        self.allowed_remote_exmods: list[str] = []
        self._lock = threading.Lock()
        self._waiter: ReplyWaiter | None = None
        self._cleaned = False

    @property
    def url(self) -> TransportURL:
        return self._driver.url

    def _require_driver_features(self, requeue: bool = False, pool: bool = False) -> None:
        """Raise a clear error if the driver lacks a feature a server needs."""
        caps = self._driver.capabilities
        scheme = self._driver.url.transport
        if requeue and not caps.requeue:
            raise exceptions.ConfigurationError(
                f"the {scheme!r} transport cannot requeue messages; build the listener "
                "with allow_requeue=False"
            )
        if pool and not caps.pools:
            raise exceptions.ConfigurationError(
                f"the {scheme!r} transport does not support listener pools"
            )

    def _reply_waiter(self) -> ReplyWaiter:
        """The transport's reply inbox, opened on first use."""
        waiter = self._waiter
        if waiter is not None:
            return waiter
        from rpcframe.rpc.replies import ReplyWaiter

        with self._lock:
            if self._cleaned:
                raise exceptions.TransportDriverError("the transport was cleaned up")
            if self._waiter is None:
                self._waiter = ReplyWaiter(self._driver, self.allowed_remote_exmods)
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._driver.url.masked()}>"


class RPCTransport(Transport):
    """A transport for RPC clients and servers."""


class NotificationTransport(Transport):
    """A transport for notifiers and notification listeners."""


def _load_driver(conf: cfg.ConfigOpts, url: TransportURL) -> base.Driver:
    name = (url.transport or "").split("+")[0]
    try:
        manager: stevedore_driver.DriverManager = stevedore_driver.DriverManager(
            DRIVER_NAMESPACE, name, invoke_on_load=True, invoke_args=(conf, url)
        )
    except stevedore_exception.NoMatches:
        raise DriverLoadFailure(
            name, f"no driver named {name!r}; installed: {', '.join(available_drivers()) or 'none'}"
        ) from None
    except ImportError as exc:
        raise DriverLoadFailure(
            name, f"{exc}; install its extra, e.g. pip install 'rpcframe[{name}]'"
        ) from exc
    driver = manager.driver
    if not isinstance(driver, base.Driver):
        raise DriverLoadFailure(name, f"{type(driver).__name__} is not an rpcframe Driver")
    return driver


def available_drivers() -> list[str]:
    """Names under the ``rpcframe.drivers`` entry point."""
    from importlib.metadata import entry_points

    return sorted({ep.name for ep in entry_points(group=DRIVER_NAMESPACE)})


def _get_transport(
    conf: cfg.ConfigOpts,
    url: str | TransportURL | None,
    allowed_remote_exmods: Iterable[str] | None,
    transport_cls: type[Transport],
) -> Transport:
    if not isinstance(conf, cfg.ConfigOpts):
        raise TypeError(f"conf must be an oslo.config ConfigOpts, got {type(conf).__name__}")
    opts.register_core(conf)
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
    opts.register_notifications(conf)
    if url is None:
        url = conf.oslo_messaging_notifications.transport_url
    return _get_transport(conf, url, allowed_remote_exmods, NotificationTransport)
