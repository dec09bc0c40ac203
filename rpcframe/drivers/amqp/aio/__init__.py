"""The asyncio RabbitMQ driver (``rabbit://`` and ``amqp://`` for :mod:`rpcframe.aio`), on aiormq.

Needs ``pip install 'rpcframe[aio]'``. It speaks to the broker exactly as
the threaded driver does: the same exchanges, queues, flags and arguments
(:mod:`rpcframe.drivers.amqp.topology`), the same message properties, the
same options and URL parameters (:mod:`rpcframe.drivers.amqp.options`,
:mod:`rpcframe.drivers.amqp.settings`), so asyncio services, threaded
rpcframe services and oslo.messaging services share one broker.

Modules: :mod:`.driver` (the AsyncDriver: sending, declarations),
:mod:`.listener` (listeners and reply inboxes), :mod:`.link` (the one
connection of a driver, reconnected when it drops) and :mod:`.errors` (the
table from aiormq's and pamqp's exceptions to rpcframe's).

Importing this package imports no AMQP library; the driver is loaded when
an asyncio transport asks for a ``rabbit://`` URL.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncRabbitDriver"]


def __getattr__(name: str) -> Any:
    if name == "AsyncRabbitDriver":
        from rpcframe.drivers.amqp.aio.driver import AsyncRabbitDriver

        return AsyncRabbitDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
