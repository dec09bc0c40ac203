"""How to reach RabbitMQ: the broker addresses, login and TLS settings of a driver.

Pure functions of the transport URL and the ``[oslo_messaging_rabbit]``
options, shared by the threaded driver (:mod:`.driver`) and the asyncio one
(:mod:`.aio`), so that both read a URL and its options the same way. Nothing
here imports an AMQP library.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
from typing import Any

from oslo_config import types

from rpcframe import exceptions
from rpcframe.drivers.amqp import options as opts

__all__ = [
    "DEFAULT_CREDENTIALS",
    "DEFAULT_PORT",
    "SSL_VERIFY",
    "Host",
    "LinkSettings",
    "check_combinations",
    "link_settings",
    "ssl_options",
    "verify",
]

LOG = logging.getLogger(__name__)

DEFAULT_PORT = 5672
DEFAULT_CREDENTIALS = "guest"

#: rpcframe's own TLS switch, a transport URL parameter only
#: (``?ssl_verify=false``): [oslo_messaging_rabbit] holds oslo.messaging's
#: options, and oslo.messaging has no such option.
SSL_VERIFY = "ssl_verify"

_TLS_VERSIONS = {
    "tlsv1": "TLSv1",
    "tlsv1_1": "TLSv1_1",
    "tlsv1_2": "TLSv1_2",
    "tlsv1_3": "TLSv1_3",
}


@dataclasses.dataclass(frozen=True)
class Host:
    """One broker address from the transport URL."""

    hostname: str
    port: int
    username: str
    password: str = dataclasses.field(repr=False)

    def __str__(self) -> str:
        return f"{self.hostname}:{self.port}"


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    """How to reach the broker; shared by every link of a driver."""

    hosts: tuple[Host, ...]
    virtual_host: str
    ssl: dict[str, Any] | None
    heartbeat: int
    heartbeat_rate: int
    login_method: str
    retry_interval: float
    retry_backoff: float
    interval_max: float
    splay: float
    shuffle: bool


def check_combinations(options: Any) -> None:
    """Refuse the option combinations oslo.messaging refuses, naming the options."""
    group = f"[{opts.RABBIT_GROUP}]"
    if options.rabbit_stream_fanout and options.rabbit_qos_prefetch_count <= 0:
        raise exceptions.ConfigurationError(
            f"{group} rabbit_stream_fanout needs rabbit_qos_prefetch_count greater than 0 "
            "(RabbitMQ only lets a stream be read with a prefetch limit)"
        )
    if options.rabbit_stream_fanout and not options.rabbit_transient_quorum_queue:
        raise exceptions.ConfigurationError(
            f"{group} rabbit_stream_fanout needs rabbit_transient_quorum_queue = true"
        )
    if options.rabbit_ha_queues and options.rabbit_quorum_queue:
        raise exceptions.ConfigurationError(
            f"{group} rabbit_ha_queues and rabbit_quorum_queue are both set: a queue is "
            "either mirrored or a quorum queue"
        )
    if options.rabbit_ha_queues and options.rabbit_transient_quorum_queue:
        raise exceptions.ConfigurationError(
            f"{group} rabbit_ha_queues and rabbit_transient_quorum_queue are both set: a "
            "queue is either mirrored or a quorum queue"
        )


def link_settings(url: Any, options: Any) -> LinkSettings:
    hosts = tuple(
        Host(
            host.hostname or "localhost",
            host.port or DEFAULT_PORT,
            DEFAULT_CREDENTIALS if host.username is None else host.username,
            DEFAULT_CREDENTIALS if host.password is None else host.password,
        )
        for host in url.hosts
    ) or (Host("localhost", DEFAULT_PORT, DEFAULT_CREDENTIALS, DEFAULT_CREDENTIALS),)
    if options.heartbeat_timeout_threshold < 0:
        raise exceptions.ConfigurationError("heartbeat_timeout_threshold must not be negative")
    return LinkSettings(
        hosts=hosts,
        virtual_host=url.virtual_host or "/",
        ssl=ssl_options(options, verify(url.query)),
        heartbeat=options.heartbeat_timeout_threshold,
        heartbeat_rate=max(1, options.heartbeat_rate),
        login_method=options.rabbit_login_method,
        retry_interval=float(options.rabbit_retry_interval),
        retry_backoff=float(options.rabbit_retry_backoff),
        interval_max=float(options.rabbit_interval_max),
        splay=float(options.kombu_reconnect_splay),
        shuffle=options.kombu_failover_strategy == "shuffle",
    )


def verify(query: Any) -> bool:
    """The transport URL's ``ssl_verify`` (True unless it says otherwise)."""
    raw = query.get(SSL_VERIFY)
    if raw is None:
        return True
    try:
        value: bool = types.Boolean()(raw)
    except ValueError:
        raise exceptions.ConfigurationError(
            f"transport URL parameter {SSL_VERIFY}={raw!r} is not a boolean"
        ) from None
    return value


def ssl_options(options: Any, verify: bool = True) -> dict[str, Any] | None:
    """py-amqp's TLS settings from the ssl_* options (None: plain TCP)."""
    if not options.ssl:
        return None
    for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
        path = getattr(options, name)
        if path and not os.path.isfile(path):
            raise exceptions.ConfigurationError(f"[oslo_messaging_rabbit] {name}: no file {path!r}")
    settings: dict[str, Any] = {}
    if verify:
        # py-amqp loads the system's trusted CAs when given no ca_certs.
        settings["cert_reqs"] = ssl.CERT_REQUIRED
        if options.ssl_ca_file:
            settings["ca_certs"] = options.ssl_ca_file
        if options.ssl_enforce_hostname_verification:
            # Filled in with each host's name when connecting.
            settings["server_hostname"] = None
    else:
        LOG.warning(
            "the transport URL says ssl_verify=false: the RabbitMQ broker's TLS "
            "certificate is not checked, so anyone on the network path can pose as it"
        )
        settings["cert_reqs"] = ssl.CERT_NONE
    if options.ssl_cert_file:
        settings["certfile"] = options.ssl_cert_file
        settings["keyfile"] = options.ssl_key_file or None
    elif options.ssl_key_file:
        raise exceptions.ConfigurationError(
            "[oslo_messaging_rabbit] ssl_key_file is set but ssl_cert_file is not"
        )
    if options.ssl_version and options.ssl_version.lower() not in ("sslv23", "tls"):
        version_name = _TLS_VERSIONS.get(options.ssl_version.lower())
        if version_name is None:
            raise exceptions.ConfigurationError(
                f"[oslo_messaging_rabbit] ssl_version {options.ssl_version!r} is not one of "
                f"{', '.join(sorted(_TLS_VERSIONS.values()))}"
            )
        version = ssl.TLSVersion[version_name]
        settings["tls_minimum_version"] = version
        settings["tls_maximum_version"] = version
    return settings
