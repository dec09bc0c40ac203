"""Every oslo.config option rpcframe reads, and ``list_opts`` for the generator.

Options keep oslo.messaging's names, groups and defaults wherever they mean the
same thing, so existing service configuration files keep working. Options
rpcframe adds live in the ``[rpcframe]`` group (core) or in a group named after
their driver.

Nothing here touches a global ``cfg.CONF``: the entry points register what they
need on the ``ConfigOpts`` they are given, through the ``register_*`` helpers.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

__all__ = ["list_opts", "set_defaults"]

transport_opts = [
    cfg.StrOpt(
        "transport_url",
        default="rabbit://",
        secret=True,
        help="The network address and optional user credentials for connecting to "
        "the messaging backend, in URL form: "
        "driver://[user:pass@]host:port[,[userN:passN@]hostN:portN]/virtual_host?query. "
        "Drivers: fake (in memory, one process), rabbit (alias amqp).",
    ),
    cfg.StrOpt(
        "control_exchange",
        default="openstack",
        help="The default exchange under which topics are scoped. A Target's own "
        "exchange overrides it.",
    ),
]

client_opts = [
    cfg.IntOpt(
        "rpc_response_timeout",
        default=60,
        help="Seconds to wait for a response from a call.",
    ),
]

pool_opts = [
    cfg.IntOpt(
        "executor_thread_pool_size",
        default=64,
        min=1,
        deprecated_name="rpc_thread_pool_size",
        help="Size of the executor thread pool of each server and listener: how "
        "many messages it handles at once.",
    ),
]

dispatcher_opts = [
    cfg.BoolOpt(
        "rpc_ping_enabled",
        default=False,
        help="Add an endpoint that answers calls to 'oslo_rpc_server_ping' with 'pong'.",
    ),
]

core_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "server_stop_timeout",
        default=60.0,
        min=0.0,
        help="Seconds a stopping server lets messages it already accepted finish "
        "before wait() gives up on them (they are logged). The work goes on in "
        "the background; nothing new is accepted.",
    ),
]

notifier_opts: list[cfg.Opt] = [
    cfg.MultiStrOpt(
        "driver",
        default=[],
        deprecated_opts=[cfg.DeprecatedOpt("notification_driver", group="DEFAULT")],
        help="The driver(s) that send notifications: messaging, messagingv2, "
        "routing, log, test, noop.",
    ),
    cfg.StrOpt(
        "transport_url",
        secret=True,
        deprecated_opts=[cfg.DeprecatedOpt("notification_transport_url", group="DEFAULT")],
        help="A URL for the transport used by notifications. If not set, the RPC "
        "transport_url is used.",
    ),
    cfg.ListOpt(
        "topics",
        default=["notifications"],
        deprecated_opts=[cfg.DeprecatedOpt("notification_topics", group="DEFAULT")],
        help="The topics notifications are sent to.",
    ),
    cfg.IntOpt(
        "retry",
        default=-1,
        help="How many times to retry sending a notification that failed for a "
        "recoverable reason: 0 never, -1 without limit.",
    ),
    cfg.StrOpt(
        "routing_config",
        default="",
        help="The YAML file the 'routing' notification driver reads: which "
        "drivers get which event types and priorities.",
    ),
]

CORE_GROUP = "rpcframe"
NOTIFICATIONS_GROUP = "oslo_messaging_notifications"

_default_opts = [*transport_opts, *client_opts, *pool_opts, *dispatcher_opts]


def register_core(conf: cfg.ConfigOpts) -> None:
    """Register the [DEFAULT] and [rpcframe] options every entry point needs."""
    conf.register_opts(_default_opts)
    conf.register_opts(core_opts, group=CORE_GROUP)


def register_notifications(conf: cfg.ConfigOpts) -> None:
    """Register core options plus the [oslo_messaging_notifications] group."""
    register_core(conf)
    conf.register_opts(notifier_opts, group=NOTIFICATIONS_GROUP)


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every option rpcframe knows (for fixtures and tools)."""
    for group, group_opts in _all_groups():
        conf.register_opts(group_opts, group=group)


def _all_groups() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [
        (None, list(_default_opts)),
        (CORE_GROUP, list(core_opts)),
        (NOTIFICATIONS_GROUP, list(notifier_opts)),
    ]


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Return ``(group, options)`` pairs for oslo-config-generator.

    Registered under the ``oslo.config.opts`` entry point as ``rpcframe``.
    """
    return [(group, copy.deepcopy(group_opts)) for group, group_opts in _all_groups()]


def set_defaults(conf: cfg.ConfigOpts, executor_thread_pool_size: int | None = None) -> None:
    """Override option defaults, as ``oslo_messaging.opts.set_defaults`` does."""
    register_core(conf)
    if executor_thread_pool_size is not None:
        conf.set_default("executor_thread_pool_size", executor_thread_pool_size)
