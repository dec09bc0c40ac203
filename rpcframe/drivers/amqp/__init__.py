"""The RabbitMQ driver (``rabbit://``, alias ``amqp://``); needs ``pip install 'rpcframe[amqp]'``.

Modules: :mod:`.driver` (the Driver and its options), :mod:`.topology`
(addresses to exchanges and queues), :mod:`.link` (one thread-safe,
self-healing connection), :mod:`.publisher` (sending, confirms) and
:mod:`.consumer` (listeners, inboxes, settling).
"""

from rpcframe.drivers.amqp.driver import RabbitDriver

__all__ = ["RabbitDriver"]
