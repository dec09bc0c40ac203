"""Every oslo.config option rpcframe reads, gathered for the tools that list them.

oslo-config-generator reaches :func:`list_opts` through the ``oslo.config.opts``
entry point (``rpcframe``), as it reaches ``oslo_messaging.opts.list_opts``.
The options themselves live where they are read: the core's in
:mod:`rpcframe.options`, each driver's beside the driver. This module sits
above all of them and is imported by nothing in the core; the option lists
are re-exported here under the names oslo.messaging-era code used.
"""

from __future__ import annotations

import copy

from oslo_config import cfg

from rpcframe import metrics
from rpcframe.drivers import fake
from rpcframe.drivers.amqp.options import (
    LOCK_GROUP,
    RABBIT_ACCEPTED_ONLY,
    RABBIT_GROUP,
    lock_path_opts,
    rabbit_opts,
)
from rpcframe.drivers.zmq import options as zmq_options
from rpcframe.options import (
    CORE_GROUP,
    METRICS_GROUP,
    NOTIFICATIONS_GROUP,
    TRACING_GROUP,
    client_opts,
    core_opts,
    dispatcher_opts,
    notifier_opts,
    pool_opts,
    register_core,
    register_notifications,
    tracing_opts,
    transport_opts,
)

__all__ = [
    "CORE_GROUP",
    "LOCK_GROUP",
    "METRICS_GROUP",
    "NOTIFICATIONS_GROUP",
    "RABBIT_ACCEPTED_ONLY",
    "RABBIT_GROUP",
    "TRACING_GROUP",
    "client_opts",
    "core_opts",
    "dispatcher_opts",
    "list_opts",
    "lock_path_opts",
    "notifier_opts",
    "pool_opts",
    "rabbit_opts",
    "register_all",
    "register_core",
    "register_notifications",
    "set_defaults",
    "tracing_opts",
    "transport_opts",
]


def register_all(conf: cfg.ConfigOpts) -> None:
    """Register every option rpcframe knows (for fixtures and tools)."""
    for group, group_opts in _all_groups():
        conf.register_opts(group_opts, group=group)


def _all_groups() -> list[tuple[str | None, list[cfg.Opt]]]:
    return [
        (None, [*transport_opts, *client_opts, *pool_opts, *dispatcher_opts]),
        (CORE_GROUP, list(core_opts)),
        (NOTIFICATIONS_GROUP, list(notifier_opts)),
        (RABBIT_GROUP, list(rabbit_opts)),
        (METRICS_GROUP, list(metrics.metrics_opts)),
        (TRACING_GROUP, list(tracing_opts)),
        (fake.GROUP, list(fake.fake_opts)),
        (zmq_options.ZMQ_GROUP, list(zmq_options.zmq_opts)),
        (zmq_options.REDIS_GROUP, list(zmq_options.redis_opts)),
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
