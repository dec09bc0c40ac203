"""Receiving on an event loop: listeners and reply inboxes of the asyncio RabbitMQ driver.

A :class:`Listener` declares its queues (and their exchanges and bindings,
as :mod:`~rpcframe.drivers.amqp.topology` describes them, with the threaded
consumer's tolerance of exchanges another service declared with other
flags and of queues it declared transient) on a channel of its own, sets
``rabbit_qos_prefetch_count`` on it, and consumes. Deliveries wait in a
buffer until ``poll`` takes them. After the connection drops, the
:class:`~rpcframe.drivers.amqp.aio.link.Link` calls :meth:`Listener.resume`
on the next one: everything is declared and consumed again. Each
subscription is an *epoch*; a delivery of an earlier epoch is dropped
unpolled (the broker put it back when its channel closed) and settling
one is a logged no-op. A consumer the broker cancels (its queue was
deleted) is subscribed again after ``kombu_reconnect_delay``.

``ack`` and ``requeue`` never wait: they write ``basic.ack`` /
``basic.reject`` (from another thread, through the loop). Reply inboxes
consume without acknowledgements, as the threaded driver's do.

Closing cancels the consumers, requeues what was received but not polled,
deletes the listener's private queues (reply, fanout) and wakes a waiting
``poll``; the channel closes once what was polled is settled, or with the
driver. Stream queues (``rabbit_stream_fanout``) are read on a channel each,
from the offset after the last message received, and their deliveries are
only ever acknowledged, as in the threaded consumer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe import exceptions
from rpcframe.drivers import asyncbase, base
from rpcframe.drivers.amqp import topology
from rpcframe.drivers.amqp.aio import errors, protocol
from rpcframe.drivers.amqp.aio.link import Link, open_channel

__all__ = ["Listener"]

LOG = logging.getLogger(__name__)

#: Bound on the broker conversation when a listener closes.
CLOSE_TIMEOUT = 5.0

#: A stream consumer's first offset, and the one after the broker cancelled it.
FIRST_OFFSET, AFTER_CANCEL_OFFSET = "next", "last"


class Delivery(base.IncomingMessage):
    """One message received in one epoch of a listener."""

    __slots__ = ("_listener", "_channel", "_tag", "_epoch", "_stream")

    def __init__(
        self,
        body: bytes,
        listener: Listener,
        channel: protocol.Channel | None,
        tag: int,
        epoch: int,
        stream: bool = False,
    ) -> None:
        super().__init__(body)
        self._listener = listener
        self._channel = channel
        self._tag = tag
        self._epoch = epoch
        self._stream = stream

    def _ack(self) -> None:
        self._listener._settle(self, requeue=False)

    def _requeue(self) -> None:
        # Streams refuse rejections (RabbitMQ closes the connection).
        self._listener._settle(self, requeue=not self._stream)


class Listener(asyncbase.AsyncInbox):
    """A subscription (with ``address``: a reply inbox); see the module documentation."""

    def __init__(
        self,
        link: Link,
        queues: Sequence[topology.Queue],
        name: str,
        *,
        prefetch: int = 0,
        no_ack: bool = False,
        reconnect_delay: float = 1.0,
        decode: Callable[[bytes, dict[str, Any]], bytes] | None = None,
        address: base.Address | None = None,
        on_closed: Callable[[Listener], None] | None = None,
    ) -> None:
        self.queues = list(queues)
        self.name = name
        if address is not None:
            self.address = address
        self._link = link
        self._loop = asyncio.get_running_loop()
        self._prefetch = prefetch
        self._no_ack = no_ack
        self._reconnect_delay = reconnect_delay
        self._decode = decode
        self._on_closed = on_closed
        self._buffer: collections.deque[Delivery] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._epoch = 0
        self._generation = 0
        self._channels: list[protocol.Channel] = []
        self._tags: list[tuple[protocol.Channel, str]] = []
        self._outstanding: set[Delivery] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._subscribing = asyncio.Lock()
        self._failure: exceptions.TransportDriverError | None = None
        self._foreign: set[str] = set()
        self._offsets: dict[str, int | str] = {
            queue.name: FIRST_OFFSET for queue in self.queues if queue.stream
        }
        self._closed = False
        self._closing: asyncio.Task[None] | None = None
        self._unsubscribed = False
        self._released = False

    # -- subscribing ---------------------------------------------------------------------

    async def resume(self, connection: protocol.Connection, generation: int) -> None:
        """Declare and consume on ``connection`` unless already done there; raises IO_ERRORS."""
        async with self._subscribing:
            if self._closed or (generation == self._generation and self._channels):
                return
            old = self._channels
            self._channels, self._tags = [], []
            self._epoch += 1
            for channel in old:
                self._spawn(_close_channel(channel))
            await self._subscribe(connection, self._epoch)
            self._generation = generation

    async def _subscribe(self, conn: protocol.Connection, epoch: int) -> None:
        channel = await self._declare_all(conn)
        self._channels.append(channel)
        if self._prefetch:
            await channel.qos(self._prefetch)
        for queue in self.queues:
            consumer_channel = channel
            arguments = queue.consumer_arguments
            if queue.stream:
                consumer_channel = await open_channel(conn)
                self._channels.append(consumer_channel)
                await consumer_channel.qos(self._prefetch)
                arguments = {**(arguments or {}), "x-stream-offset": self._offsets[queue.name]}
            tag = await consumer_channel.consume(
                queue.name,
                self._receiver(consumer_channel, epoch, queue),
                no_ack=self._no_ack,
                arguments=arguments,
                on_cancel=self._cancelled(epoch, queue),
            )
            self._tags.append((consumer_channel, tag))

    async def _declare_all(self, conn: protocol.Connection) -> protocol.Channel:
        """Declare every queue, exchange and binding; returns an open channel.

        The broker closes the channel of a refused declaration: what the
        threaded consumer tolerates is declared again on a new one.
        """
        channel = await open_channel(conn)
        for queue in self.queues:
            for exchange in {exchange.name: exchange for exchange, _ in queue.bindings}.values():
                if exchange.name:
                    channel = await self._declare_exchange(conn, channel, exchange)
            channel = await self._declare_queue(conn, channel, queue)
            for exchange, key in queue.bindings:
                if exchange.name:
                    await channel.queue_bind(queue.name, exchange.name, routing_key=key)
        return channel

    async def _declare_queue(
        self, conn: protocol.Connection, channel: Any, queue: topology.Queue
    ) -> Any:
        try:
            await declare_queue(channel, queue)
            return channel
        except protocol.PreconditionFailed as exc:
            text = errors.reply_text(exc)
            if not (queue.durable and topology.exists_transient(text)):
                raise exceptions.TransportBroken(topology.refusal(queue, text)) from exc
            LOG.warning(
                "%s: queue %r exists transient (%s); declaring it transient",
                self.name,
                queue.name,
                text,
            )
        channel = await open_channel(conn)
        try:
            await declare_queue(channel, dataclasses.replace(queue, durable=False))
        except protocol.PreconditionFailed as exc:
            raise exceptions.TransportBroken(
                topology.refusal(queue, errors.reply_text(exc))
            ) from exc
        return channel

    async def _declare_exchange(
        self, conn: protocol.Connection, channel: Any, exchange: topology.Exchange
    ) -> Any:
        try:
            await declare_exchange(channel, exchange, passive=exchange.name in self._foreign)
            return channel
        except protocol.PreconditionFailed as exc:
            text = errors.reply_text(exc)
            if topology.inequivalent(text) not in topology.TOLERATED:
                raise exceptions.TransportBroken(
                    f"RabbitMQ refused to declare exchange {exchange.name!r}: {text}"
                ) from exc
            LOG.warning(
                "%s: exchange %r exists with other settings (%s); using it as it is",
                self.name,
                exchange.name,
                text,
            )
        self._foreign.add(exchange.name)
        channel = await open_channel(conn)
        await declare_exchange(channel, exchange, passive=True)
        return channel

    def _receiver(
        self, channel: protocol.Channel, epoch: int, queue: topology.Queue
    ) -> protocol.OnDelivery:
        buffer = self._buffer
        stream = queue.stream

        def on_message(tag: int, body: bytes, headers: dict[str, Any] | None) -> None:
            if self._closed and not self._no_ack:
                # Arrived after close: straight back to the queue.
                if not stream:
                    channel.reject(tag, requeue=True)
                return
            if headers:
                if stream:
                    offset = headers.get("x-stream-offset")
                    if isinstance(offset, int):
                        self._offsets[queue.name] = offset + 1
                if self._decode is not None:
                    body = self._decode(body, headers)
            buffer.append(Delivery(body, self, channel, tag, epoch, stream))
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        return on_message

    def _cancelled(self, epoch: int, queue: topology.Queue) -> protocol.OnCancel:
        def on_cancel(consumer_tag: str) -> None:
            if epoch != self._epoch or self._closed:
                return
            LOG.warning(
                "%s: RabbitMQ cancelled consumer %s (queue %s deleted or moved); subscribing again",
                self.name,
                consumer_tag,
                queue.name,
            )
            if queue.stream:
                self._offsets[queue.name] = AFTER_CANCEL_OFFSET
            self._generation = 0  # resume() subscribes again on the same connection
            self._spawn(self._resubscribe())

        return on_cancel

    async def _resubscribe(self) -> None:
        await asyncio.sleep(self._reconnect_delay)  # the broker's own pace: kombu_reconnect_delay
        try:
            conn, generation = await self._link.connection()
            await self.resume(conn, generation)
        except errors.IO_ERRORS as exc:
            LOG.info("%s: could not subscribe again yet: %s", self.name, errors.describe(exc))
        except exceptions.TransportDriverError as exc:
            self.broken(exc)

    def broken(self, error: exceptions.TransportDriverError) -> None:
        LOG.error("%s: the subscription is lost: %s", self.name, error)
        self._failure = error
        self._wake()

    # -- receiving ----------------------------------------------------------------------

    async def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        buffer = self._buffer
        deadline = None if timeout is None else self._loop.time() + timeout
        while True:
            while buffer:
                delivery = buffer.popleft()
                if self._closed:
                    buffer.appendleft(delivery)
                    return None
                if self._no_ack:
                    return delivery
                if delivery._epoch != self._epoch and not delivery._stream:
                    continue  # its channel is gone: the broker redelivers it
                self._outstanding.add(delivery)
                return delivery
            if self._closed:
                return None
            if self._failure is not None:
                failure = self._failure
                self.close()
                raise failure
            waiter = self._waiter = self._loop.create_future()
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                return None
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- settling -----------------------------------------------------------------------

    def _settle(self, delivery: Delivery, requeue: bool) -> None:
        if self._no_ack:
            if requeue:
                self._buffer.appendleft(Delivery(delivery.body, self, None, 0, delivery._epoch))
                self._wake()
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not self._loop:
            self._loop.call_soon_threadsafe(self._settle_here, delivery, requeue)
        else:
            self._settle_here(delivery, requeue)

    def _settle_here(self, delivery: Delivery, requeue: bool) -> None:
        self._outstanding.discard(delivery)
        channel = delivery._channel
        if (
            channel is None
            or channel.is_closed
            or (delivery._epoch != self._epoch and not delivery._stream)
        ):
            LOG.debug("%s: not settling a message of a lost channel; RabbitMQ redelivers it",
                      self.name)  # fmt: skip
        elif requeue:
            channel.reject(delivery._tag, requeue=True)
        else:
            channel.ack(delivery._tag)
        if self._unsubscribed and not self._outstanding:
            self._release()

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            LOG.debug("%s: %s", self.name, errors.describe(task.exception()))  # type: ignore[arg-type]

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._link.unsubscribe(self)
        self._wake()
        self._closing = self._loop.create_task(self._unsubscribe())

    async def wait_closed(self) -> None:
        if self._closing is not None:
            await asyncio.shield(self._closing)

    async def _unsubscribe(self) -> None:
        """Cancel consumers, requeue unpolled deliveries, delete private queues."""
        async with self._subscribing:
            tags, channels = self._tags, self._channels
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    for channel, tag in tags:
                        if not channel.is_closed:
                            await channel.cancel(tag)
                    while self._buffer and not self._no_ack:
                        delivery = self._buffer.popleft()
                        channel_ = delivery._channel
                        if delivery._epoch != self._epoch or channel_ is None or channel_.is_closed:
                            continue
                        if delivery._stream:
                            channel_.ack(delivery._tag)
                        else:
                            channel_.reject(delivery._tag, requeue=True)
                    private = [queue for queue in self.queues if queue.private]
                    if private and channels and not channels[0].is_closed:
                        for queue in private:
                            await channels[0].queue_delete(queue.name)
            except errors.IO_OR_TIMEOUT as exc:
                LOG.debug("%s: could not unsubscribe cleanly: %s", self.name, errors.describe(exc))
        self._unsubscribed = True
        if not self._outstanding:
            self._release()

    def _release(self) -> None:
        if self._released:
            return
        self._released = True
        channels, self._channels = self._channels, []
        for channel in channels:
            self._spawn(_close_channel(channel))
        if self._on_closed is not None:
            self._on_closed(self)

    async def shutdown(self) -> None:
        """Close, then wait for what closing sends (the driver closes next)."""
        self.close()
        if self._closing is not None:
            await self._closing
        self._release()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT)


async def _close_channel(channel: protocol.Channel) -> None:
    if channel.is_closed:
        return
    with contextlib.suppress(*errors.IO_OR_TIMEOUT):
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await channel.close()


async def declare_queue(channel: protocol.Channel, queue: topology.Queue) -> None:
    await channel.queue_declare(
        queue.name,
        durable=queue.durable,
        auto_delete=queue.auto_delete,
        arguments=queue.arguments or None,
    )


async def declare_exchange(
    channel: protocol.Channel, exchange: topology.Exchange, passive: bool = False
) -> None:
    await channel.exchange_declare(
        exchange.name,
        exchange.type,
        passive=passive,
        durable=exchange.durable,
        auto_delete=exchange.auto_delete,
    )
