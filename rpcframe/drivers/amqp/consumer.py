"""Receiving: listeners and reply inboxes, each on a connection of its own.

A :class:`Consumer` declares its queues and consumes them on its own
:class:`~rpcframe.drivers.amqp.link.Link`; after a reconnect the link runs
the setup again, so queues, bindings and consumers are restored (by the
keeper thread at once, or by the next ``poll``).

Deliveries are buffered by whichever thread reads the connection;
``poll`` hands them out, reading the socket itself when nobody else does,
so a server's polling thread (or a lone caller reading its reply) gets each
message without a thread hand-off.

Settling: ``ack`` and ``requeue`` may come from any thread (notification
workers settle after their endpoint returns); each is one frame written
under the link's I/O lock, never a wait. A delivery belongs to the
connection it came on: after a reconnect the broker has already put it
back in its queue, so settling it is a logged no-op and buffered
deliveries from the old connection are dropped. Reply inboxes consume
without acknowledgements (a reply is read once by the process that owns
the queue), which saves a frame per call.

The window: a listener whose queues are all classic queues takes at most
a *window* of messages ahead of ``poll``, a channel-wide ``basic.qos``
(``global``) that RabbitMQ applies at once when it changes. Its server
sets it to what its free workers can start
(:meth:`~rpcframe.drivers.base.Listener.window`), so that a server whose
workers are all busy leaves the messages of a shared queue to the other
servers of the topic. Only what is neither acknowledged nor requeued
counts against it: a request acknowledged as it is polled (RPC) frees its
place at once, a notification when its endpoint has returned, so the
window is the free workers plus what the listener handed out unsettled.
It moves only when that number halves or doubles, one frame each time (a
frame per message would cost more than the precision is worth), and is 1
when no worker is free: RabbitMQ has no window of 0. The window starts at
``executor_thread_pool_size`` before any server says otherwise. Quorum
queues refuse channel-wide limits, so a listener with one has no window,
only ``rabbit_qos_prefetch_count`` (per consumer, as in oslo.messaging);
nor do stream consumers, which read on channels of their own.

Closing a listener cancels its consumers, gives back (requeues) what was
received but not polled, deletes its private queue (fanout, reply) and
wakes a blocked ``poll``. Messages already polled stay settle-able; the
connection closes when the last of them is settled, or with the driver.

Streams (``rabbit_stream_fanout``) are consumed on a channel each, so that
every delivery tells which stream it came from. A stream keeps its
messages, and every consumer says where to start reading: a new
subscription starts with the messages that arrive after it (``next``, as a
fresh fanout queue would), and a resubscription after a reconnect just
after the last message received, so nothing sent meanwhile is lost and
nothing is read twice. Deliveries of a lost connection are handed out all
the same (the broker would not send them again), and settling a stream
delivery, even a requeue, only acknowledges it: streams refuse rejections
(RabbitMQ closes the connection), and their acknowledgements only make room
in the prefetch window. After the broker cancels a stream consumer (the
stream was deleted, or moved) the next subscription starts at ``last``, the
last chunk written, as oslo.messaging does: a stream declared again starts
its offsets afresh.

Exchanges that exist with other flags than this service's (another service
declared them durable, or not) are used as they are, as oslo.messaging does
for ``durable``. A queue that exists transient where this service declares
it durable is declared transient, as oslo.messaging does. A queue that
exists with other flags or arguments otherwise fails the subscription with
an error naming the options to align.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
import kombu.compression

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.drivers.amqp import errors, frames, pyamqp, topology
from rpcframe.drivers.amqp.errors import IO_ERRORS
from rpcframe.drivers.amqp.link import Link, LinkDown, LinkSettings

__all__ = ["Consumer", "Delivery"]

LOG = logging.getLogger(__name__)

#: Bound on the broker conversation when a listener closes.
CLOSE_TIMEOUT = 5.0


#: The widest window ``basic.qos`` can express (its count is a short).
MAX_WINDOW = 0xFFFF

#: ``basic.qos`` (prefetch size, prefetch count, global).
_QOS = (60, 10)
_QOS_ARGS = "lBb"

#: A stream consumer's first offset, and the one after the broker cancelled it.
FIRST_OFFSET, AFTER_CANCEL_OFFSET = "next", "last"


class Delivery(base.IncomingMessage):
    """A message received on one connection generation of a consumer."""

    __slots__ = ("_consumer", "_channel", "_tag", "_generation")

    #: Handed out even after its connection was lost (stream deliveries).
    outlives_connection = False

    def __init__(
        self,
        body: bytes,
        consumer: Consumer,
        channel: amqp.Channel | None,
        tag: int,
        generation: int,
    ) -> None:
        super().__init__(body)
        self._consumer = consumer
        self._channel = channel
        self._tag = tag
        self._generation = generation

    def _ack(self) -> None:
        self._consumer._settle(self, requeue=False)

    def _requeue(self) -> None:
        self._consumer._settle(self, requeue=True)


class StreamDelivery(Delivery):
    """A delivery from a stream: never rejected, never dropped on a reconnect."""

    __slots__ = ()

    outlives_connection = True

    def _requeue(self) -> None:
        self._consumer._settle(self, requeue=False)


class Consumer(base.Inbox):
    """A listener (or, with ``address``, a reply inbox); see the module documentation.

    :param settings: how to reach the broker.
    :param queues: what to declare and consume.
    :param name: names the connection's thread and log lines.
    :param prefetch: each consumer's QoS prefetch count (0: unlimited).
    :param window: the first window, channel-wide (0: no window; see the
        module documentation). Only for classic queues.
    :param no_ack: consume without acknowledgements (reply inboxes).
    :param on_closed: told when the consumer no longer needs its connection.
    """

    def __init__(
        self,
        settings: LinkSettings,
        queues: Sequence[topology.Queue],
        name: str,
        *,
        prefetch: int = 0,
        window: int = 0,
        no_ack: bool = False,
        reconnect_delay: float = 1.0,
        address: base.Address | None = None,
        on_closed: Callable[[Consumer], None] | None = None,
    ) -> None:
        self.queues = list(queues)
        self.name = name
        if address is not None:
            self.address = address
        self._prefetch = prefetch
        self._windowed = window > 0 and not no_ack
        self._window = min(window, MAX_WINDOW)  # 0: unbounded (a server said None)
        self._no_ack = no_ack
        self._reconnect_delay = reconnect_delay
        self._on_closed = on_closed
        self._buffer: collections.deque[Delivery] = collections.deque()
        self._lock = threading.Lock()
        self._closed = False
        # Set once close() has unsubscribed (and deleted private queues):
        # until then the connection is not let go, whoever settles last.
        self._unsubscribed = threading.Event()
        self._released = False
        self._outstanding: set[Delivery] = set()
        self._channel: amqp.Channel | None = None
        self._channel_generation = 0
        self._tags: list[tuple[amqp.Channel, str]] = []
        # Where each stream is read from next (see the module documentation).
        self._offsets: dict[str, int | str] = {
            queue.name: FIRST_OFFSET for queue in self.queues if queue.stream
        }
        # Exchanges declared by others with other flags: declared passively.
        self._foreign: set[str] = set()
        self.link = Link(settings, name, self._setup, keep_connected=True)

    def start(self, deadline: float | None) -> None:
        """Connect and subscribe; raises like :meth:`Link.ensure`.

        A declaration the broker refuses is a TransportBroken naming the
        options to align.
        """
        self.link.ensure(deadline)

    # -- connection setup ------------------------------------------------------------

    def _setup(self, conn: amqp.Connection, generation: int) -> None:
        channel = self._declare_all(conn)
        if self._prefetch:
            channel.basic_qos(0, self._prefetch, False)
        if self._windowed:
            channel.basic_qos(0, self._window, True)
        reader = frames.reader_of(conn)
        # Every frame of the connection passes through the link's frame
        # reader, py-amqp's own reads while subscribing included: registered
        # before the first basic.consume, it hands over every delivery.
        reader.on_delivery(channel.channel_id, self._receiver(channel, generation))
        tags = []
        for queue in self.queues:
            consumer_channel = channel
            arguments = queue.consumer_arguments
            if queue.stream:
                consumer_channel = conn.channel()
                consumer_channel.basic_qos(0, self._prefetch, False)
                reader.on_delivery(
                    consumer_channel.channel_id,
                    self._stream_receiver(consumer_channel, generation, queue.name),
                )
                offset = self._offsets[queue.name]
                arguments = {**(arguments or {}), "x-stream-offset": offset}
                LOG.debug("%s: reading stream %s from offset %s", self.name, queue.name, offset)
            tag = consumer_channel.basic_consume(
                queue.name,
                no_ack=self._no_ack,
                arguments=arguments,
                on_cancel=self._cancelled(generation, queue),
            )
            tags.append((consumer_channel, tag))
        self._channel = channel
        self._channel_generation = generation
        self._tags = tags

    def _declare_all(self, conn: amqp.Connection) -> amqp.Channel:
        """Declare every queue, exchange and binding; returns an open channel.

        The broker closes the channel of a refused declaration: an exchange
        that exists with other flags is declared again, passively, on a new one.
        """
        channel = conn.channel()
        for queue in self.queues:
            for exchange in {exchange.name: exchange for exchange, _ in queue.bindings}.values():
                if exchange.name:
                    channel = self._declare_exchange(conn, channel, exchange)
            channel = self._declare_queue(conn, channel, queue)
            topology.bind(channel, queue)
        return channel

    def _declare_queue(
        self, conn: amqp.Connection, channel: amqp.Channel, queue: topology.Queue
    ) -> amqp.Channel:
        try:
            topology.declare_queue(channel, queue)
            return channel
        except amqp.exceptions.PreconditionFailed as exc:
            if not (queue.durable and topology.exists_transient(exc.reply_text)):
                raise errors.translate(exc, topology.refusal(queue, exc.reply_text)) from exc
            # oslo.messaging's fallback: a queue another service declared
            # transient is declared transient (with the same arguments).
            LOG.warning(
                "%s: queue %r exists transient (%s); declaring it transient",
                self.name,
                queue.name,
                exc.reply_text,
            )
        channel = conn.channel()
        transient = dataclasses.replace(queue, durable=False)
        try:
            topology.declare_queue(channel, transient)
        except amqp.exceptions.PreconditionFailed as exc:
            raise errors.translate(exc, topology.refusal(queue, exc.reply_text)) from exc
        return channel

    def _declare_exchange(
        self, conn: amqp.Connection, channel: amqp.Channel, exchange: topology.Exchange
    ) -> amqp.Channel:
        try:
            topology.declare_exchange(channel, exchange, passive=exchange.name in self._foreign)
            return channel
        except amqp.exceptions.PreconditionFailed as exc:
            if topology.inequivalent(exc.reply_text) not in topology.TOLERATED:
                raise errors.translate(
                    exc, f"RabbitMQ refused to declare exchange {exchange.name!r}: {exc.reply_text}"
                ) from exc
            LOG.warning(
                "%s: exchange %r exists with other settings (%s); using it as it is",
                self.name,
                exchange.name,
                exc.reply_text,
            )
        self._foreign.add(exchange.name)
        channel = conn.channel()
        topology.declare_exchange(channel, exchange, passive=True)
        return channel

    def _receiver(self, channel: amqp.Channel, generation: int) -> frames.OnDelivery:
        buffer = self._buffer
        changed = self.link.changed

        def on_delivery(tag: int, body: bytes, headers: dict[str, Any] | None) -> None:
            if self._closed and not self._no_ack:
                # Arrived after close: straight back to the queue.
                channel.basic_reject(tag, requeue=True)
                return
            if headers is not None:
                body = self._decompressed(body, headers)
            buffer.append(Delivery(body, self, channel, tag, generation))
            changed()

        return on_delivery

    def _stream_receiver(
        self, channel: amqp.Channel, generation: int, stream: str
    ) -> frames.OnDelivery:
        buffer = self._buffer
        changed = self.link.changed
        offsets = self._offsets

        def on_delivery(tag: int, body: bytes, headers: dict[str, Any] | None) -> None:
            offset = headers.get("x-stream-offset") if headers else None
            if isinstance(offset, int):
                offsets[stream] = offset + 1
            if headers is not None:
                body = self._decompressed(body, headers)
            buffer.append(StreamDelivery(body, self, channel, tag, generation))
            changed()

        return on_delivery

    def _decompressed(self, body: bytes, headers: dict[str, Any]) -> bytes:
        """The body of a message kombu compressed (``compression`` header)."""
        compression = headers.get("compression")
        if not compression:
            return body
        try:
            decoded: bytes = kombu.compression.decompress(body, compression)
        except Exception as exc:  # noqa: BLE001 - a bad message must not stop the reader
            LOG.error(
                "%s: cannot decompress a message (compression %r): %s; passing it on as it is",
                self.name,
                compression,
                exc,
            )
            return body
        return decoded

    def _cancelled(self, generation: int, queue: topology.Queue) -> Callable[[str], None]:
        def on_cancel(consumer_tag: str) -> None:
            LOG.warning(
                "%s: RabbitMQ cancelled consumer %s (queue deleted or moved); subscribing again",
                self.name,
                consumer_tag,
            )
            if queue.stream:
                LOG.warning(
                    "%s: reading stream %s again from its last chunk (it was at offset %s)",
                    self.name,
                    queue.name,
                    self._offsets.get(queue.name),
                )
                self._offsets[queue.name] = AFTER_CANCEL_OFFSET
            self.link.broken(
                generation,
                amqp.exceptions.ConsumerCancelled(consumer_tag),
                delay=self._reconnect_delay,
            )

        return on_cancel

    # -- receiving ------------------------------------------------------------------------

    def _ready(self) -> bool:
        return bool(self._buffer) or self._closed

    def poll(self, timeout: float | None = None) -> base.IncomingMessage | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        link = self.link
        buffer = self._buffer
        while True:
            while buffer:
                try:
                    delivery = buffer.popleft()
                except IndexError:
                    break
                if self._closed:
                    buffer.appendleft(delivery)
                    return None
                if self._no_ack:
                    return delivery
                if delivery._generation != link.generation and not delivery.outlives_connection:
                    continue  # its connection is gone: the broker redelivers it
                with self._lock:
                    self._outstanding.add(delivery)
                return delivery
            if self._closed:
                return None
            try:
                link.ensure(deadline)
                if not link.wait(self._ready, deadline):
                    return None
            except LinkDown:
                continue
            except exceptions.MessagingTimeout:
                return None
            except exceptions.AuthenticationError:
                self.close()
                raise
            except exceptions.TransportDriverError:
                if self._closed:
                    return None
                raise

    def pending(self) -> bool:
        return bool(self._buffer) or self.link.readable()

    def window(self, messages: int | None) -> None:
        if not self._windowed or self._closed:
            return
        if messages is None:
            wanted = 0
        else:
            wanted = min(max(1, messages + len(self._outstanding)), MAX_WINDOW)
        current = self._window
        if wanted == current or (wanted and current and current < 2 * wanted < 4 * current):
            return  # within a factor of two: not worth a frame
        self._window = wanted
        channel, generation = self._channel, self._channel_generation
        if channel is None:
            return  # the setup sends it
        arguments = pyamqp.encode(_QOS_ARGS, (0, wanted, True))
        try:
            self.link.write(
                generation,
                lambda conn: pyamqp.write_frame(conn, channel.channel_id, _QOS, arguments),
            )
        except LinkDown:
            pass  # the next connection's setup sends the window

    # -- settling -------------------------------------------------------------------------------

    def _settle(self, delivery: Delivery, requeue: bool) -> None:
        if self._no_ack:
            if requeue:
                self._buffer.appendleft(
                    Delivery(delivery.body, self, None, 0, delivery._generation)
                )
            return
        try:
            self.link.write(
                delivery._generation, lambda conn: self._write_settle(conn, delivery, requeue)
            )
        except LinkDown:
            LOG.debug(
                "%s: not settling a message from a lost connection; RabbitMQ redelivers it",
                self.name,
            )
        finally:
            with self._lock:
                self._outstanding.discard(delivery)
                release = (
                    self._unsubscribed.is_set() and not self._outstanding and not self._released
                )
                if release:
                    self._released = True
            if release:
                self._release()

    def _write_settle(self, conn: amqp.Connection, delivery: Delivery, requeue: bool) -> None:
        channel = delivery._channel
        assert channel is not None
        if requeue:
            channel.basic_reject(delivery._tag, requeue=True)
        else:
            frames.ack(conn, channel.channel_id, delivery._tag)

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.link.kick()
        try:
            self._unsubscribe()
        finally:
            with self._lock:
                self._unsubscribed.set()
        with self._lock:
            release = not self._outstanding and not self._released
            if release:
                self._released = True
        if release:
            self._release()

    def _unsubscribe(self) -> None:
        """Cancel consumers, requeue unpolled deliveries, delete private queues."""
        if not self.link.connected:
            return
        deadline = time.monotonic() + CLOSE_TIMEOUT
        try:
            with self.link.exclusive(deadline) as (conn, generation):
                channel = self._channel
                if channel is None:
                    return
                for consumer_channel, tag in self._tags:
                    consumer_channel.basic_cancel(tag)
                if not self._no_ack:
                    while self._buffer:
                        delivery = self._buffer.popleft()
                        if delivery._generation != generation or delivery._channel is None:
                            continue
                        if delivery.outlives_connection:
                            # Streams refuse rejections; their messages stay in them.
                            frames.ack(conn, delivery._channel.channel_id, delivery._tag)
                        else:
                            channel.basic_reject(delivery._tag, requeue=True)
                for queue in self.queues:
                    if queue.private:
                        channel.queue_delete(queue.name)
        except (LinkDown, exceptions.MessagingException, *IO_ERRORS) as exc:  # type: ignore[misc]
            LOG.debug("%s: could not unsubscribe cleanly: %s", self.name, exc)

    def _release(self) -> None:
        self.link.close()
        if self._on_closed is not None:
            with contextlib.suppress(Exception):
                self._on_closed(self)

    def shutdown(self) -> None:
        """Close, and drop the connection even if polled messages are unsettled.

        The broker then requeues them. Used when the driver closes. A close
        under way in another thread is let finish its unsubscribing first
        (within CLOSE_TIMEOUT), so that its private queues are deleted.
        """
        self.close()
        self._unsubscribed.wait(CLOSE_TIMEOUT)
        with self._lock:
            release = not self._released
            self._released = True
        if release:
            self._release()
