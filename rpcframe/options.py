"""The core's oslo.config options, and the helpers that register them.

``[DEFAULT]`` (transport URL, control exchange, timeouts, pools), ``[rpcframe]``
(options rpcframe adds), ``[oslo_messaging_notifications]``,
``[oslo_messaging_metrics]`` and ``[oslo_messaging_tracing]``. Options keep
oslo.messaging's names, groups and defaults wherever they mean the same thing,
so existing service configuration files keep working. A driver's options live
beside the driver (``rpcframe.drivers.amqp.options``, ``rpcframe.drivers.fake``);
:mod:`rpcframe.opts` gathers all of them for the sample configuration.

Nothing here touches a global ``cfg.CONF``: the entry points register what they
need on the ``ConfigOpts`` they are given, through the ``register_*`` helpers.
"""

from __future__ import annotations

from oslo_config import cfg

from rpcframe import metrics

__all__ = ["register_core", "register_notifications"]

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
    cfg.FloatOpt(
        "server_handover_delay",
        default=0.002,
        min=0.0,
        help="Seconds a server worker that received a message may handle it while "
        "still holding the turn to receive, before an idle worker takes the turn "
        "over. Handling short requests on the receiving thread saves a thread "
        "switch per message; a request that takes longer lets the next message "
        "wait at most this long. 0 passes the turn on as each message arrives. "
        "Only for transports whose listeners one thread at a time polls "
        "(RabbitMQ); others wake an idle worker per message.",
    ),
]

call_limit_opts: list[cfg.Opt] = [
    cfg.FloatOpt(
        "rpc_max_call_seconds",
        default=0.0,
        min=0.0,
        help="Seconds an RPC server lets one request run. Past it, the request's "
        "call is cancelled (the endpoint sees rpcframe.rpc.current_call().cancelled, "
        "a streaming endpoint's generator is closed) and the caller gets a "
        "CallCancelled remote error at once. 0: no limit. Read when a server "
        "starts; get_rpc_server's max_call_seconds overrides it for one server.",
    ),
    cfg.IntOpt(
        "rpc_max_concurrent_calls",
        default=0,
        min=0,
        help="Requests an RPC server runs at once, at most. The server takes no "
        "more from its queues than that, so the others wait there for another "
        "server (or a free worker). 0: executor_thread_pool_size. Read when a "
        "server starts; get_rpc_server's max_concurrent_calls overrides it for one server.",
    ),
]
core_opts += call_limit_opts

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

#: oslo.messaging's OpenTelemetry tracing options: accepted, so that a
#: configuration file that sets them loads, but rpcframe does not trace.
tracing_opts = [
    cfg.BoolOpt(
        "tracing_enabled",
        default=False,
        help="Accepted for compatibility with oslo.messaging; rpcframe does not trace.",
    ),
    cfg.StrOpt(
        "tracing_service_name",
        default="openstack",
        help="Accepted for compatibility with oslo.messaging; not used.",
    ),
    cfg.StrOpt(
        "otel_exporter_otlp_endpoint",
        default="http://localhost:4318",
        help="Accepted for compatibility with oslo.messaging; not used.",
    ),
    cfg.StrOpt(
        "otlp_protocol",
        default="http/protobuf",
        choices=["http/protobuf", "grpc"],
        help="Accepted for compatibility with oslo.messaging; not used.",
    ),
    cfg.BoolOpt(
        "insecure",
        default=False,
        help="Accepted for compatibility with oslo.messaging; not used.",
    ),
]

CORE_GROUP = "rpcframe"
NOTIFICATIONS_GROUP = "oslo_messaging_notifications"
METRICS_GROUP = "oslo_messaging_metrics"
TRACING_GROUP = "oslo_messaging_tracing"

_default_opts = [*transport_opts, *client_opts, *pool_opts, *dispatcher_opts]


def register_core(conf: cfg.ConfigOpts) -> None:
    """Register the [DEFAULT] and [rpcframe] options every entry point needs."""
    conf.register_opts(_default_opts)
    conf.register_opts(core_opts, group=CORE_GROUP)
    conf.register_opts(metrics.metrics_opts, group=METRICS_GROUP)


def register_notifications(conf: cfg.ConfigOpts) -> None:
    """Register core options plus the [oslo_messaging_notifications] group."""
    register_core(conf)
    conf.register_opts(notifier_opts, group=NOTIFICATIONS_GROUP)
