"""The raw py-amqp references of ``rpcframe bench --compare``: RabbitMQ with no framework.

:class:`RawAmqp` measures what no library on top of py-amqp can beat: a
request/reply round trip to an echo server that consumes without
acknowledgements and replies without waiting for anything, and a publish
that waits for its broker confirm.

It also measures the round trip again doing, still without any framework,
the broker work oslo.messaging's wire protocol and delivery rules ask for:
the request goes through a topic exchange and carries an expiration; the
server acknowledges it before replying; the reply is mandatory and the
server waits for its confirm (on a connection of its own, as rpcframe's and
oslo.messaging's servers do). Likewise it measures confirmed casts through
that exchange, taken and acknowledged by that server, end to end. What that
work costs is the part of the gap to the bare figures that no
implementation of the protocol can close.
:mod:`rpcframe.bench` measures these in rounds alternating with rpcframe's
own sequential calls and confirmed casts.

Imported only when comparing on RabbitMQ: it needs the ``amqp`` package.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import time
import uuid
from typing import Any

import amqp

__all__ = ["RawAmqp", "amqp_params"]


def amqp_params(url: str) -> dict[str, Any]:
    """py-amqp ``Connection`` arguments for the first host of a ``rabbit://`` URL."""
    from oslo_config import cfg

    from rpcframe.transport import TransportURL

    parsed = TransportURL.parse(cfg.ConfigOpts(), url)
    host = parsed.hosts[0] if parsed.hosts else None
    return {
        "host": f"{(host and host.hostname) or 'localhost'}:{(host and host.port) or 5672}",
        "userid": (host and host.username) or "guest",
        "password": (host and host.password) or "guest",
        "virtual_host": parsed.virtual_host or "/",
    }


def _raw_echo_server(
    params: dict[str, Any], queue: str, exchange: str | None, ready: Any, stop: Any
) -> None:
    """Reply to every request on ``queue`` with its body, until ``stop`` is set.

    With ``exchange`` (a topic exchange to bind the queue to), do the work
    of oslo.messaging's protocol: acknowledge each request before replying,
    and publish the reply as mandatory, waiting for its confirm.
    """
    conn = amqp.Connection(**params)
    conn.connect()
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)
    replies, confirming = channel, None
    if exchange is not None:
        channel.exchange_declare(exchange, "topic", auto_delete=True)
        channel.queue_bind(queue, exchange, queue)
        confirming = amqp.Connection(**params, confirm_publish=True)
        confirming.connect()
        replies = confirming.channel()

    def on_request(message: Any) -> None:
        if confirming is not None:
            channel.basic_ack(message.delivery_tag)
        if "reply_to" not in message.properties:
            return  # a cast
        replies.basic_publish(
            amqp.Message(message.body, correlation_id=message.properties.get("correlation_id")),
            routing_key=message.properties["reply_to"],
            mandatory=confirming is not None,
        )

    channel.basic_consume(queue, callback=on_request, no_ack=confirming is None)
    ready.set()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.5)
    if confirming is not None:
        confirming.close()
    conn.close()


class RawAmqp:
    """Bare py-amqp round trips and confirmed publishes, ready to measure in chunks.

    On enter it starts two echo servers in processes of their own (spawned,
    so that they inherit no threads): a bare one and one doing the work of
    oslo.messaging's protocol. It opens a client connection with an
    exclusive reply queue and a ``confirm_publish`` connection with a queue
    of its own, and warms up with ``warmup`` round trips to each server; on
    exit it deletes that queue, closes both connections and stops the
    servers (the reply queue and the servers' auto-delete queues and
    exchange go with their connections). In between, the measurements can
    be taken in as many chunks as wanted.
    """

    #: The expiration of the requests that follow oslo.messaging's protocol
    #: (milliseconds, as a call's timeout becomes it).
    PROTOCOL_EXPIRATION = "30000"

    def __init__(self, url: str, payload_size: int, warmup: int, timeout: float) -> None:
        self._params = amqp_params(url)
        self._warmup = warmup
        self._timeout = timeout
        suffix = uuid.uuid4().hex[:10]
        self._echo_queue = f"bench_raw_{suffix}"
        self._protocol_queue = f"bench_rawproto_{suffix}"
        self._protocol_exchange = f"bench_rawproto_{suffix}"
        self._publish_queue = f"bench_rawcast_{suffix}"
        value = "x" * payload_size
        self._echo_body = json.dumps({"method": "echo", "args": {"value": value}})
        self._bump_body = json.dumps({"method": "bump", "args": {"value": value}})
        self._replies: list[Any] = []
        self._requests = 0
        self._open: contextlib.ExitStack

    def __enter__(self) -> RawAmqp:
        with contextlib.ExitStack() as stack:
            self._start_echo_server(stack, self._echo_queue, None)
            self._start_echo_server(stack, self._protocol_queue, self._protocol_exchange)
            self._client = stack.enter_context(amqp.Connection(**self._params))
            self._channel = self._client.channel()
            self._reply_queue, _, _ = self._channel.queue_declare("", exclusive=True)
            self._channel.basic_consume(
                self._reply_queue, callback=self._replies.append, no_ack=True
            )
            confirming = stack.enter_context(amqp.Connection(**self._params, confirm_publish=True))
            self._publish_channel = confirming.channel()
            self._publish_channel.queue_declare(self._publish_queue)
            stack.callback(self._publish_channel.queue_delete, self._publish_queue)
            self.round_trips(self._warmup)
            self.protocol_round_trips(self._warmup)
            self._open = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.close()

    def _start_echo_server(
        self, stack: contextlib.ExitStack, queue: str, exchange: str | None
    ) -> None:
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        server = context.Process(
            target=_raw_echo_server,
            args=(self._params, queue, exchange, ready, stop),
            name="rpcframe-bench-raw-echo",
            daemon=True,
        )
        server.start()

        def stop_server() -> None:
            stop.set()
            server.join(10)
            if server.is_alive():
                server.kill()
                server.join(10)

        stack.callback(stop_server)
        if not ready.wait(self._timeout):
            raise RuntimeError("the raw echo server did not start")

    def round_trips(self, count: int) -> list[float]:
        """Send ``count`` requests, each after the reply to the last; return their latencies."""
        return self._round_trips(count, "", self._echo_queue, {})

    def protocol_round_trips(self, count: int) -> list[float]:
        """The same, through a topic exchange, to the server doing oslo's protocol work."""
        return self._round_trips(
            count,
            self._protocol_exchange,
            self._protocol_queue,
            {"expiration": self.PROTOCOL_EXPIRATION, "delivery_mode": 2},
        )

    def _round_trips(
        self, count: int, exchange: str, routing_key: str, properties: dict[str, Any]
    ) -> list[float]:
        channel, drain, replies = self._channel, self._client.drain_events, self._replies
        latencies = []
        for _ in range(count):
            self._requests += 1
            started = time.perf_counter()
            channel.basic_publish(
                amqp.Message(
                    self._echo_body,
                    reply_to=self._reply_queue,
                    correlation_id=str(self._requests),
                    **properties,
                ),
                exchange=exchange,
                routing_key=routing_key,
            )
            while not replies:
                drain(timeout=self._timeout)
            replies.pop()
            latencies.append(time.perf_counter() - started)
        return latencies

    def protocol_confirmed_casts(self, count: int) -> float:
        """Confirmed casts through the topic exchange, end to end; the seconds taken.

        Each waits for its confirm; the server acknowledges each as it takes
        it. The clock stops when a request sent after the last cast comes
        back: the queue is first in, first out, so the server has taken them all.
        """
        channel = self._publish_channel
        started = time.perf_counter()
        for _ in range(count):
            channel.basic_publish(
                amqp.Message(self._bump_body, delivery_mode=2),
                exchange=self._protocol_exchange,
                routing_key=self._protocol_queue,
            )
        self.protocol_round_trips(1)
        return time.perf_counter() - started

    def confirmed_publishes(self, count: int) -> float:
        """Publish ``count`` messages, each waiting for its confirm; return the seconds taken."""
        channel = self._publish_channel
        started = time.perf_counter()
        for _ in range(count):
            channel.basic_publish(amqp.Message(self._bump_body), routing_key=self._publish_queue)
        return time.perf_counter() - started
