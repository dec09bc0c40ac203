"""Where rpcframe addresses live on RabbitMQ: exchanges, queues, bindings.

The names and flags are oslo.messaging's, so that both libraries meet on one
broker:

=====================  ======================================  ==========================
address                exchange (type)                         queue(s), binding key
=====================  ======================================  ==========================
rpc topic              ``exchange`` (topic)                    ``<topic>``, ``<topic>``
rpc server             ``exchange`` (topic)                    ``<topic>.<server>``, same
rpc fanout             ``<topic>_fanout`` (fanout)             ``<topic>_fanout_<unique>``
                                                               (with stream fanout:
                                                               ``<topic>_fanout``), ``<topic>``
notify                 ``exchange`` (topic)                    ``<topic>.<priority>``, same
notify with pool       ``exchange`` (topic)                    ``<pool>``, each
                                                               ``<topic>.<priority>``
reply                  the default exchange ``""``             ``reply_<unique>``
=====================  ======================================  ==========================

``<unique>`` is a random id, or ``<hostname>:<processname>:<counter>`` with
the queue manager (:mod:`~rpcframe.drivers.amqp.queue_manager`).

*Shared* queues (RPC topic and server, notifications) and topic exchanges
are durable when ``amqp_durable_queues`` or ``rabbit_quorum_queue`` is set,
auto-delete when ``amqp_auto_delete`` is, and quorum queues
(``x-queue-type``) with ``rabbit_quorum_queue``.

*Transient* queues (reply, fanout) belong to one process: an ``x-expires``
of ``rabbit_transient_queues_ttl`` lets the broker remove those of a process
that died, and rpcframe deletes them itself when done, unless the queue
manager named them (the name comes back after a restart). With
``rabbit_transient_quorum_queue`` they are durable quorum queues, and
fanout exchanges (always auto-delete) are durable.

With ``rabbit_stream_fanout`` one durable stream queue per topic replaces
the fanout queues: every listener reads it from its own offset, and it is
never deleted by a listener; ``rabbit_transient_queues_ttl`` becomes its
retention (``x-max-age``). ``rabbit_ha_queues`` adds ``x-ha-policy: all``
to every queue but the stream, ``enable_cancel_on_failover`` adds
``x-cancel-on-ha-failover`` to the consumers of classic queues (RabbitMQ
refuses it for quorum queues and streams).

Everything here is pure: no I/O (the queue manager is handed in).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe.drivers import base

__all__ = ["DEFAULT_EXCHANGE", "Exchange", "Queue", "Topology", "refusal"]

DEFAULT_EXCHANGE = ""

#: Queue roles: what a queue is for, which decides the options behind its flags.
SHARED, REPLY, FANOUT, STREAM = "shared", "reply", "fanout", "stream"


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
    #: Only this process uses the queue and nobody will use its name again:
    #: delete it when the listener closes.
    private: bool = False
    #: SHARED, REPLY, FANOUT or STREAM.
    role: str = SHARED
    #: Arguments of ``basic.consume`` (a stream's offset is added per consumer).
    consumer_arguments: dict[str, Any] | None = None

    @property
    def stream(self) -> bool:
        return self.role == STREAM


def _random_id() -> str:
    return uuid.uuid4().hex


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
    transient_quorum: bool = False
    stream_fanout: bool = False
    ha_queues: bool = False
    cancel_on_failover: bool = False
    #: Names reply and fanout queues (the queue manager); random ids by default.
    unique: Callable[[], str] = dataclasses.field(default=_random_id, compare=False)

    @classmethod
    def from_options(cls, options: Any, unique: Callable[[], str] | None = None) -> Topology:
        return cls(
            durable=bool(options.amqp_durable_queues or options.rabbit_quorum_queue),
            auto_delete=bool(options.amqp_auto_delete),
            quorum=bool(options.rabbit_quorum_queue),
            quorum_delivery_limit=options.rabbit_quorum_delivery_limit,
            quorum_max_memory_length=options.rabbit_quorum_max_memory_length,
            quorum_max_memory_bytes=options.rabbit_quorum_max_memory_bytes,
            transient_ttl=options.rabbit_transient_queues_ttl,
            transient_quorum=bool(options.rabbit_transient_quorum_queue),
            stream_fanout=bool(options.rabbit_stream_fanout),
            ha_queues=bool(options.rabbit_ha_queues),
            cancel_on_failover=bool(options.enable_cancel_on_failover),
            unique=unique or _random_id,
        )

    @property
    def named_by_manager(self) -> bool:
        return self.unique is not _random_id

    # -- entities --------------------------------------------------------------------

    def topic_exchange(self, name: str) -> Exchange:
        return Exchange(name, "topic", self.durable, self.auto_delete)

    def fanout_exchange(self, topic: str) -> Exchange:
        # Senders declare it durable with transient quorum queues, listeners
        # also with stream fanout (which requires transient quorum queues).
        durable = self.transient_quorum or self.stream_fanout
        return Exchange(f"{topic}_fanout", "fanout", durable, True)

    def _quorum_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": "quorum"}
        if self.quorum_delivery_limit:
            args["x-delivery-limit"] = self.quorum_delivery_limit
        if self.quorum_max_memory_length:
            args["x-max-in-memory-length"] = self.quorum_max_memory_length
        if self.quorum_max_memory_bytes:
            args["x-max-in-memory-bytes"] = self.quorum_max_memory_bytes
        return args

    def _shared_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-ha-policy": "all"} if self.ha_queues else {}
        if self.quorum:
            args.update(self._quorum_arguments())
        return args

    def _transient_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-ha-policy": "all"} if self.ha_queues else {}
        if self.transient_quorum:
            args.update(self._quorum_arguments())
        if self.transient_ttl > 0:
            args["x-expires"] = self.transient_ttl * 1000
        return args

    def _stream_arguments(self) -> dict[str, Any]:
        args: dict[str, Any] = {"x-queue-type": "stream"}
        if self.transient_ttl > 0:
            args["x-max-age"] = f"{self.transient_ttl}s"
        return args

    def _consumer_arguments(self, quorum: bool) -> dict[str, Any] | None:
        # The flag concerns mirrored classic queues; RabbitMQ refuses a
        # consumer of a quorum queue that asks for it.
        if self.cancel_on_failover and not quorum:
            return {"x-cancel-on-ha-failover": True}
        return None

    def shared_queue(self, name: str, bindings: Sequence[tuple[Exchange, str]]) -> Queue:
        """An RPC topic/server or notification queue."""
        return Queue(
            name,
            self.durable,
            self.auto_delete,
            self._shared_arguments(),
            tuple(bindings),
            consumer_arguments=self._consumer_arguments(self.quorum),
        )

    def reply_queue(self) -> Queue:
        return Queue(
            f"reply_{self.unique()}",
            self.transient_quorum,
            False,
            self._transient_arguments(),
            private=not self.named_by_manager,
            role=REPLY,
            consumer_arguments=self._consumer_arguments(self.transient_quorum),
        )

    def fanout_queue(self, topic: str) -> Queue:
        exchange = self.fanout_exchange(topic)
        if self.stream_fanout:
            return Queue(
                f"{topic}_fanout",
                True,
                False,
                self._stream_arguments(),
                ((exchange, topic),),
                role=STREAM,
            )
        return Queue(
            f"{topic}_fanout_{self.unique()}",
            self.transient_quorum,
            False,
            self._transient_arguments(),
            ((exchange, topic),),
            private=not self.named_by_manager,
            role=FANOUT,
            consumer_arguments=self._consumer_arguments(self.transient_quorum),
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
                queues.append(self.fanout_queue(address.topic))
            else:
                key = f"{address.topic}.{address.server}" if address.server else address.topic
                queues.append(self.shared_queue(key, [(exchange, key)]))
        if pooled:
            queues.append(self.shared_queue(pool or "", pooled))
        return queues


@dataclasses.dataclass(frozen=True)
class Route:
    """Where one send goes: exchange (None: the default), routing key, and a
    queue to declare first (notifications are stored until a listener runs)."""

    exchange: Exchange | None
    routing_key: str
    queue: Queue | None = None

    @property
    def declares(self) -> str:
        """What a sender declares first, by name: the queue, else the exchange ("": nothing)."""
        if self.queue is not None:
            return self.queue.name
        return self.exchange.name if self.exchange is not None else ""


# -- refused declarations -----------------------------------------------------------------

_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)' for (?P<kind>queue|exchange) '(?P<name>.*?)'"
    r" in vhost '.*?': received (?P<received>.*) but current is (?P<current>.*)$"
)

#: The options that decide each flag or argument, by queue role.
_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "durable": {
        SHARED: ("amqp_durable_queues", "rabbit_quorum_queue"),
        REPLY: ("rabbit_transient_quorum_queue",),
        FANOUT: ("rabbit_transient_quorum_queue", "rabbit_stream_fanout"),
        STREAM: ("rabbit_stream_fanout",),
    },
    "x-queue-type": {
        SHARED: ("rabbit_quorum_queue",),
        REPLY: ("rabbit_transient_quorum_queue",),
        FANOUT: ("rabbit_transient_quorum_queue", "rabbit_stream_fanout"),
        STREAM: ("rabbit_stream_fanout",),
    },
    "auto_delete": {role: ("amqp_auto_delete",) for role in (SHARED, REPLY, FANOUT, STREAM)},
    "x-expires": {role: ("rabbit_transient_queues_ttl",) for role in (REPLY, FANOUT)},
    "x-max-age": {STREAM: ("rabbit_transient_queues_ttl",)},
    "x-ha-policy": {role: ("rabbit_ha_queues",) for role in (SHARED, REPLY, FANOUT)},
    "x-delivery-limit": {
        role: ("rabbit_quorum_delivery_limit",) for role in (SHARED, REPLY, FANOUT)
    },
    "x-max-in-memory-length": {
        role: ("rabbit_quorum_max_memory_length",) for role in (SHARED, REPLY, FANOUT)
    },
    "x-max-in-memory-bytes": {
        role: ("rabbit_quorum_max_memory_bytes",) for role in (SHARED, REPLY, FANOUT)
    },
}


#: Exchange flags other services may have chosen differently: such an
#: exchange is used as it is (oslo.messaging falls back on ``durable``).
TOLERATED = (("exchange", "durable"), ("exchange", "auto_delete"))


def inequivalent(reply_text: str) -> tuple[str, str] | None:
    """``(kind, argument)`` of a refused redeclaration ("queue", "durable"), or None."""
    match = _INEQUIVALENT.search(reply_text or "")
    return (match["kind"], match["arg"]) if match else None


def exists_transient(reply_text: str) -> bool:
    """Whether a queue was refused as durable because it exists transient."""
    match = _INEQUIVALENT.search(reply_text or "")
    return bool(
        match
        and (match["kind"], match["arg"]) == ("queue", "durable")
        and match["current"].strip() == "'false'"
    )


def refusal(queue: Queue, reply_text: str) -> str:
    """Why RabbitMQ refused to declare ``queue``, naming the options to align."""
    match = _INEQUIVALENT.search(reply_text or "")
    if match is None or match["kind"] != "queue":
        return (
            f"RabbitMQ refused to declare queue {queue.name!r}: {reply_text} (does it "
            "exist with other settings, e.g. durable or quorum? Delete it or align the "
            "[oslo_messaging_rabbit] options of the services that share it)"
        )
    arg = match["arg"]
    options = _OPTIONS.get(arg, {}).get(queue.role, ())
    advice = (
        "set [oslo_messaging_rabbit] "
        + " / ".join(options)
        + " as the services that declared it have it"
        if options
        else "align the [oslo_messaging_rabbit] options with the services that declared it"
    )
    return (
        f"queue {queue.name!r} already exists with {arg} {match['current']}, and this "
        f"service declares it with {match['received']}: {advice}, or delete the queue "
        f"(RabbitMQ: {reply_text})"
    )


def declare_queue(channel: Any, queue: Queue) -> None:
    channel.queue_declare(
        queue.name,
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        arguments=queue.arguments or None,
    )


def bind(channel: Any, queue: Queue) -> None:
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
