"""Sending: one connection per driver, publisher confirms, mandatory returns.

The publisher owns the driver's sending :class:`~rpcframe.drivers.amqp.link.Link`
with two channels: a *confirm* channel (RabbitMQ publisher confirms) for
everything whose sender waits until the broker owns the message, and a
*plain* channel for call requests, whose reply proves delivery and whose
caller should not pay for a confirm.

A waiting send registers its delivery tag before writing; the thread that
reads the connection (often the sender itself) settles the tag when the
broker's ``basic.ack`` / ``basic.nack`` arrives and wakes exactly that
sender. A mandatory message carries its tag as ``message_id``, so a
``basic.return`` (which RabbitMQ sends before the ack of the same message)
marks the right send as unroutable.

If the connection breaks before the confirm, the message is published
again on the next connection: a send that returns was confirmed, possibly
twice (the RPC server drops duplicate ``_unique_id``\\ s). Exchanges (and
notification queues) are declared once per connection.

With ``kombu_compression`` every body is compressed as kombu does it, and
marked with kombu's ``compression`` header, so that oslo.messaging (and
rpcframe) receivers decompress it.

In an eventlet-patched process a third channel carries what native threads
send (:meth:`Publisher.detached_sender`): call-monitor heartbeats, written
whole between the green threads' frames, on a channel of their own so that
they never fall inside another message's frames on the same channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import amqp
import amqp.exceptions
import kombu.compression

from rpcframe import exceptions, green
from rpcframe.drivers.amqp import errors, frames, pyamqp, topology
from rpcframe.drivers.amqp.connection import guard_of
from rpcframe.drivers.amqp.link import Link, LinkDown, LinkSettings
from rpcframe.drivers.amqp.pulse import Guard

__all__ = ["Publisher"]

LOG = logging.getLogger(__name__)

_ACKED, _NACKED, _RETURNED = "acked", "nacked", "returned"


class _Confirm:
    """One publish waiting for the broker's verdict."""

    __slots__ = ("tag", "generation", "returned", "state")

    def __init__(self, tag: int, generation: int) -> None:
        self.tag = tag
        self.generation = generation
        self.returned = False
        self.state: str | None = None


class Publisher:
    """Publishes for a driver; thread-safe. See the module documentation."""

    def __init__(self, settings: LinkSettings, name: str, compression: str | None = None) -> None:
        """``compression``: a kombu compression name (validated by the caller) or None."""
        self.link = Link(settings, f"{name}-send", self._setup)
        self._compress: Any = None
        self._headers: bytes | None = None
        if compression:
            self._compress, mime = kombu.compression.get_encoder(compression)
            self._headers = frames.encode_headers((("compression", mime),))
        self._confirm_ch: amqp.Channel | None = None
        self._plain_ch: amqp.Channel | None = None
        # What native threads write with: (guard, channel id, frame_max).
        self._detached: tuple[Guard, int, int] | None = None
        self._seq = 0
        self._pending: dict[int, _Confirm] = {}
        self._declared: set[str] = set()
        # Exchanges that exist with other flags than ours (declared by
        # another service): used as they are, declared passively.
        self._foreign: set[str] = set()

    # -- connection setup (runs before anyone else sees the connection) ---------

    def _setup(self, conn: amqp.Connection, generation: int) -> None:
        confirm = conn.channel()
        confirm.confirm_select()
        frames.reader_of(conn).on_confirm(confirm.channel_id, self._on_ack, self._on_nack)
        pyamqp.on_return(confirm, self._on_return)
        plain = conn.channel()
        guard = guard_of(conn)
        if guard is not None:
            self._detached = (guard, conn.channel().channel_id, conn.frame_max)
        with self.link.io_lock:
            self._confirm_ch, self._plain_ch = confirm, plain
            self._seq = 0
            self._declared = set()
            # Sends still waiting on the old connection notice the new
            # generation and publish again.
            self._pending = {}

    # -- frame callbacks (run in the reader, I/O lock held) ------------------------

    def _settle(self, delivery_tag: int, multiple: bool, state: str) -> None:
        pending = self._pending
        if multiple:
            while pending:
                tag = next(iter(pending))
                if tag > delivery_tag:
                    break
                confirm = pending.pop(tag)
                confirm.state = _RETURNED if confirm.returned and state == _ACKED else state
        else:
            confirm_ = pending.pop(delivery_tag, None)
            if confirm_ is not None:
                confirm_.state = _RETURNED if confirm_.returned and state == _ACKED else state
        self.link.changed()

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, _ACKED)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, _NACKED)

    def _on_return(self, exc: Any, exchange: str, routing_key: str, message: Any) -> None:
        tag = message.properties.get("message_id")
        confirm = self._pending.get(int(tag)) if isinstance(tag, str) and tag.isdigit() else None
        if confirm is not None:
            confirm.returned = True
        else:
            LOG.debug("unroutable message to %r/%r returned", exchange, routing_key)

    # -- sending ----------------------------------------------------------------------------

    def send(
        self,
        route: topology.Route,
        body: bytes,
        *,
        expiry: float | None,
        mandatory: bool,
        confirm: bool,
        retry: int | None,
        deadline: float | None,
    ) -> None:
        """Publish ``body`` along ``route``; see the module documentation.

        Raises MessageUndeliverable (mandatory and unroutable),
        MessageDeliveryFailure (broker refused it, or ``retry`` used up),
        MessagingTimeout (``deadline``), AuthenticationError,
        TransportClosed, TransportBroken (a declaration the broker refuses).
        """
        expiration = None if expiry is None else str(max(1, int(expiry * 1000)))
        exchange = route.exchange.name if route.exchange is not None else topology.DEFAULT_EXCHANGE
        payload = body if self._compress is None else self._compress(body)
        arguments = frames.publish_arguments(exchange, route.routing_key, mandatory)
        wait = confirm or mandatory
        left = retry if retry is not None and retry >= 0 else None
        link = self.link
        while True:
            generation = link.ensure(deadline, left)
            try:
                self._declare(route, generation, deadline)
                mode = mandatory if wait else None
                outcome = self._send_once(
                    generation, arguments, payload, expiration, mode, deadline
                )
            except LinkDown:
                outcome = None
            if outcome == _ACKED:
                return
            if outcome == _RETURNED:
                raise exceptions.MessageUndeliverable(None, exchange, route.routing_key, body)
            if outcome == _NACKED:
                raise exceptions.MessageDeliveryFailure(
                    f"RabbitMQ refused the message to {exchange!r}/{route.routing_key!r}"
                )
            # The connection failed or changed under the send: publish again.
            if left is not None:
                if left == 0:
                    raise exceptions.MessageDeliveryFailure(
                        f"could not send to {exchange!r}/{route.routing_key!r}: the "
                        f"connection failed and no retries are left"
                    )
                left -= 1
            LOG.debug("resending to %r/%r after a reconnect", exchange, route.routing_key)

    def _send_once(
        self,
        generation: int,
        arguments: bytes,
        body: bytes,
        expiration: str | None,
        mandatory: bool | None,
        deadline: float | None,
    ) -> str | None:
        """Publish on connection ``generation`` (``mandatory`` None: on the
        plain channel, without waiting). Returns the broker's verdict, or None
        if the connection changed first. Raises LinkDown, MessagingTimeout."""
        link = self.link
        if mandatory is None:
            message = frames.Outgoing(
                body, frames.encode_properties(expiration, None, self._headers)
            )
            link.write(generation, lambda conn: self._plain(conn, arguments, message))
            return _ACKED
        pending = link.write(
            generation,
            lambda conn: self._publish_confirmed(
                conn, arguments, body, expiration, mandatory, generation
            ),
        )
        if not link.wait(
            lambda: pending.state is not None or link.generation != generation, deadline
        ):
            raise exceptions.MessagingTimeout("RabbitMQ did not confirm a message in time")
        return pending.state

    def _plain(self, conn: amqp.Connection, arguments: bytes, message: frames.Outgoing) -> None:
        channel = self._plain_ch
        assert channel is not None
        frames.publish(conn, channel.channel_id, arguments, message)

    def _publish_confirmed(
        self,
        conn: amqp.Connection,
        arguments: bytes,
        body: bytes,
        expiration: str | None,
        mandatory: bool,
        generation: int,
    ) -> _Confirm:
        """Publish on the confirm channel. I/O lock held."""
        channel = self._confirm_ch
        assert channel is not None
        self._seq += 1
        pending = _Confirm(self._seq, generation)
        # A mandatory message carries its tag, so that a return finds its send.
        properties = frames.encode_properties(
            expiration, str(pending.tag) if mandatory else None, self._headers
        )
        self._pending[pending.tag] = pending
        frames.publish(conn, channel.channel_id, arguments, frames.Outgoing(body, properties))
        return pending

    def _declare(self, route: topology.Route, generation: int, deadline: float | None) -> None:
        """Declare the route's exchange (and queue) once per connection."""
        exchange, queue = route.exchange, route.queue
        key = queue.name if queue is not None else (exchange.name if exchange else "")
        if not key or key in self._declared:
            return
        refused: amqp.exceptions.PreconditionFailed | None = None
        with self.link.exclusive(deadline) as (_conn, current):
            if current != generation:
                raise LinkDown("reconnected")
            channel = self._plain_ch
            assert channel is not None and exchange is not None
            try:
                topology.declare_exchange(channel, exchange, passive=exchange.name in self._foreign)
                if queue is not None:
                    # Its exchange is declared just above (passively if foreign).
                    topology.declare_queue(channel, queue)
                    topology.bind(channel, queue)
                self._declared.add(key)
            except amqp.exceptions.PreconditionFailed as exc:
                refused = exc
        if refused is None:
            return
        # The broker closed the channel; rebuild the connection either way.
        self.link.broken(generation, refused)
        what = topology.inequivalent(refused.reply_text)
        exchange_flags = what in topology.TOLERATED or (what is None and queue is None)
        if exchange_flags and exchange.name not in self._foreign:
            LOG.warning(
                "exchange %r exists with other settings (%s); using it as it is",
                exchange.name,
                refused.reply_text,
            )
            self._foreign.add(exchange.name)
            raise LinkDown("exchange flags differ")
        if queue is not None and what is not None and what[0] == "queue":
            raise errors.translate(
                refused, topology.refusal(queue, refused.reply_text)
            ) from refused
        raise errors.translate(
            refused,
            f"RabbitMQ refused to declare {key!r}: {refused.reply_text} (does it exist "
            "with other settings, e.g. durable or quorum? Delete it or align the options)",
        ) from refused

    def detached_sender(
        self, route: topology.Route, deadline: float | None
    ) -> Callable[[bytes], bool] | None:
        """A fire-and-forget send along ``route`` for native threads (patched processes).

        Connects first if need be (up to ``deadline``). The function returned
        may be called from any OS thread: it writes one message on the
        current connection's detached channel without a confirm, and says
        whether it could (not while reconnecting, say). None in a threaded
        process, whose threads need no such path. Routes to the default
        exchange only (replies): nothing is declared for them.
        """
        if not green.patched():
            return None
        self.link.ensure(deadline)
        exchange = route.exchange.name if route.exchange is not None else topology.DEFAULT_EXCHANGE
        arguments = frames.publish_arguments(exchange, route.routing_key, False)
        properties = frames.encode_properties()

        def send(body: bytes) -> bool:
            detached = self._detached
            if detached is None:
                return False
            guard, channel_id, frame_max = detached
            return guard.send(
                frames.encode_publish(channel_id, arguments, properties, body, frame_max)
            )

        return send

    def close(self) -> None:
        self.link.close()


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
