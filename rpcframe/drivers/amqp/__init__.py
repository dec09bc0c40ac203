"""The RabbitMQ driver (``rabbit://``, alias ``amqp://``); needs ``pip install 'rpcframe[amqp]'``.

Modules: :mod:`.driver` (the Driver), :mod:`.options` (its
``[oslo_messaging_rabbit]`` options), :mod:`.topology` (addresses to exchanges
and queues), :mod:`.link` (one thread-safe, self-healing connection),
:mod:`.publisher` (sending, confirms) and :mod:`.consumer` (listeners, inboxes,
settling).

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
