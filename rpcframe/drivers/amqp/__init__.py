"""The RabbitMQ driver (``rabbit://``, alias ``amqp://``); needs ``pip install 'rpcframe[amqp]'``.

Modules: :mod:`.driver` (the Driver), :mod:`.options` (its
``[oslo_messaging_rabbit]`` options), :mod:`.topology` (addresses to exchanges
and queues), :mod:`.link` (one thread-safe, self-healing connection), with
:mod:`.reconnect` (when and where it connects next), :mod:`.keeper` (its
background thread) and :mod:`.connection` (opening one), :mod:`.publisher`
(sending, confirms), :mod:`.consumer` (listeners, inboxes, settling),
:mod:`.frames` (hot-path frame encoding and parsing), :mod:`.polling` and
:mod:`.pulse` (waiting, and heartbeats from a native thread, in eventlet-patched
processes), :mod:`.queue_manager` (stable queue names), :mod:`.errors` (the one
table from backend exceptions to rpcframe's) and :mod:`.pyamqp` (the only
module that touches py-amqp's internals, and the check of them).

Importing this package imports no AMQP library: the options can be listed on a
machine without py-amqp, and the driver is loaded when a ``rabbit://`` URL asks
for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RabbitDriver"]


def __getattr__(name: str) -> Any:
    if name == "RabbitDriver":
        from rpcframe.drivers.amqp.driver import RabbitDriver

        return RabbitDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
