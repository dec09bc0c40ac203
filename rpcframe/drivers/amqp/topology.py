"""Where rpcframe addresses live on RabbitMQ: exchanges, queues, bindings.

The names and flags are oslo.messaging's, so that both libraries meet on one
broker:

=====================  ======================================  ==========================
address                exchange (type)                         queue(s), binding key
=====================  ======================================  ==========================
rpc topic              ``exchange`` (topic)                    ``<topic>``, ``<topic>``
rpc server             ``exchange`` (topic)                    ``<topic>.<server>``, same
rpc fanout             ``<topic>_fanout`` (fanout)             ``<topic>_fanout_<uuid>``
notify                 ``exchange`` (topic)                    ``<topic>.<priority>``, same
notify with pool       ``exchange`` (topic)                    ``<pool>``, each
                                                               ``<topic>.<priority>``
reply                  the default exchange ``""``             ``reply_<uuid>``
=====================  ======================================  ==========================

Topic exchanges and the RPC and notification queues are durable when
``amqp_durable_queues`` (or ``rabbit_quorum_queue``) is set and auto-delete
when ``amqp_auto_delete`` is. Fanout exchanges are transient and
auto-delete. Reply and fanout queues are private to one process: transient,
with an ``x-expires`` of ``rabbit_transient_queues_ttl`` so that the broker
removes those of a process that died. Quorum queues (``x-queue-type``) are
used for RPC topic and notification queues when ``rabbit_quorum_queue`` is
set. Everything here is pure: no I/O.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

from rpcframe.drivers import base

__all__ = ["DEFAULT_EXCHANGE", "Exchange", "Queue", "Topology"]

DEFAULT_EXCHANGE = ""


@dataclasses.dataclass(frozen=True)
class Exchange:
    name: str
    type: str
    durable: bool = False
    auto_delete: bool = False


@dataclasses.dataclass(frozen=True)
class Queue:
    """A queue to declare, with its bindings ``(exchange, routing key)``."""

    name: str
    durable: bool
    auto_delete: bool
    arguments: dict[str, Any]
    bindings: tuple[tuple[Exchange, str], ...] = ()
    #: Only this process uses the queue: delete it when the listener closes.
    private: bool = False


@dataclasses.dataclass(frozen=True)
class Route:
    """Where one send goes: exchange (None: the default), routing key, and a
    queue to declare first (notifications are stored until a listener runs)."""

    exchange: Exchange | None
    routing_key: str
    queue: Queue | None = None


@dataclasses.dataclass(frozen=True)
class Topology:
    """Maps addresses to broker entities, following the driver's options."""

    durable: bool = False
    auto_delete: bool = False
    quorum: bool = False
    quorum_delivery_limit: int = 0
    quorum_max_memory_length: int = 0
    quorum_max_memory_bytes: int = 0
    transient_ttl: int = 1800

    @classmethod
    def from_options(cls, options: Any) -> Topology:
        return cls(
            durable=bool(options.amqp_durable_queues or options.rabbit_quorum_queue),
            auto_delete=bool(options.amqp_auto_delete),
            quorum=bool(options.rabbit_quorum_queue),
            quorum_delivery_limit=options.rabbit_quorum_delivery_limit,
            quorum_max_memory_length=options.rabbit_quorum_max_memory_length,
            quorum_max_memory_bytes=options.rabbit_quorum_max_memory_bytes,
            transient_ttl=options.rabbit_transient_queues_ttl,
        )

    # -- entities --------------------------------------------------------------------

    def topic_exchange(self, name: str) -> Exchange:
        return Exchange(name, "topic", self.durable, self.auto_delete)

    @staticmethod
    def fanout_exchange(topic: str) -> Exchange:
        return Exchange(f"{topic}_fanout", "fanout", False, True)

    def _shared_arguments(self) -> dict[str, Any]:
        if not self.quorum:
            return {}
        args: dict[str, Any] = {"x-queue-type": "quorum"}
        if self.quorum_delivery_limit:
            args["x-delivery-limit"] = self.quorum_delivery_limit
        if self.quorum_max_memory_length:
            args["x-max-in-memory-length"] = self.quorum_max_memory_length
        if self.quorum_max_memory_bytes:
            args["x-max-in-memory-bytes"] = self.quorum_max_memory_bytes
        return args

    def _private_arguments(self) -> dict[str, Any]:
        return {"x-expires": self.transient_ttl * 1000} if self.transient_ttl > 0 else {}

    def shared_queue(self, name: str, bindings: Sequence[tuple[Exchange, str]]) -> Queue:
        """An RPC topic/server or notification queue."""
        return Queue(
            name, self.durable, self.auto_delete, self._shared_arguments(), tuple(bindings)
        )

    def reply_queue(self) -> Queue:
        return Queue(
            f"reply_{uuid.uuid4().hex}", False, False, self._private_arguments(), private=True
        )

    # -- addresses --------------------------------------------------------------------

    def route(self, address: base.Address) -> Route:
        """Where ``send(address)`` publishes."""
        if address.kind == base.REPLY:
            return Route(None, address.topic)
        if address.kind == base.NOTIFY:
            exchange = self.topic_exchange(address.exchange)
            queue = self.shared_queue(address.topic, [(exchange, address.topic)])
            return Route(exchange, address.topic, queue)
        if address.fanout:
            # Fanout exchanges ignore the key; oslo.messaging sends an empty one.
            return Route(self.fanout_exchange(address.topic), "")
        key = f"{address.topic}.{address.server}" if address.server else address.topic
        return Route(self.topic_exchange(address.exchange), key)

    def subscriptions(self, addresses: Sequence[base.Address], pool: str | None) -> list[Queue]:
        """The queues a listener on ``addresses`` consumes from."""
        queues: list[Queue] = []
        pooled: list[tuple[Exchange, str]] = []
        for address in addresses:
            if address.kind == base.REPLY:
                raise ValueError("reply addresses come from open_inbox(), not listen()")
            exchange = self.topic_exchange(address.exchange)
            if address.kind == base.NOTIFY:
                if pool:
                    pooled.append((exchange, address.topic))
                else:
                    queues.append(self.shared_queue(address.topic, [(exchange, address.topic)]))
            elif address.fanout:
                fanout = self.fanout_exchange(address.topic)
                queues.append(
                    Queue(
                        f"{address.topic}_fanout_{uuid.uuid4().hex}",
                        False,
                        False,
                        self._private_arguments(),
                        ((fanout, address.topic),),
                        private=True,
                    )
                )
            else:
                key = f"{address.topic}.{address.server}" if address.server else address.topic
                queues.append(self.shared_queue(key, [(exchange, key)]))
        if pooled:
            queues.append(self.shared_queue(pool or "", pooled))
        return queues


def declare(channel: Any, queue: Queue) -> None:
    """Declare ``queue``, its exchanges and bindings on a py-amqp channel (synchronous)."""
    seen: set[str] = set()
    for exchange, _ in queue.bindings:
        if exchange.name and exchange.name not in seen:
            declare_exchange(channel, exchange)
            seen.add(exchange.name)
    channel.queue_declare(
        queue.name,
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        arguments=queue.arguments or None,
    )
    for exchange, key in queue.bindings:
        if exchange.name:
            channel.queue_bind(queue.name, exchange.name, key)


def declare_exchange(channel: Any, exchange: Exchange, passive: bool = False) -> None:
    channel.exchange_declare(
        exchange.name,
        exchange.type,
        passive=passive,
        durable=exchange.durable,
        auto_delete=exchange.auto_delete,
    )
