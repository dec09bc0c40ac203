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
:mod:`rpcframe.bench.workloads` measures these in rounds alternating with rpcframe's
own sequential calls and confirmed casts.

Imported only when comparing on RabbitMQ: it needs the ``amqp`` package.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import multiprocessing
import time
import uuid
from typing import Any

import amqp

__all__ = ["BareClient", "EchoServers", "RawAmqp", "Variant", "amqp_params"]


def amqp_params(url: str) -> dict[str, Any]:
    """py-amqp ``Connection`` arguments for the first host of a ``rabbit://`` URL."""
    from oslo_config import cfg

    import rpcframe

    parsed = rpcframe.TransportURL.parse(cfg.ConfigOpts(), url)
    host = parsed.hosts[0] if parsed.hosts else None
    return {
        "host": f"{(host and host.hostname) or 'localhost'}:{(host and host.port) or 5672}",
        "userid": (host and host.username) or "guest",
        "password": (host and host.password) or "guest",
        "virtual_host": parsed.virtual_host or "/",
    }


@dataclasses.dataclass(frozen=True)
class Variant:
    """What a bare echo server (and the client talking to it) does of the protocol's work."""

    name: str
    topic: bool = False  # through a topic exchange named as the queue (else the default one)
    expiration: bool = False  # requests carry an expiration (the client's part)
    ack: bool = False  # the server acknowledges each message as it takes it
    confirmed_reply: bool = False  # the reply is mandatory and confirmed
    consumer: bool = True  # a server takes the messages at all

    def exchange(self, queue: str) -> str:
        """The exchange a client publishes to, for ``queue``."""
        return queue if self.topic else ""


def _echo_server(
    params: dict[str, Any], queue: str, variant: Variant, ready: Any, stop: Any
) -> None:
    """Serve ``queue`` as ``variant`` says, until ``stop`` is set.

    Replies with the request's body to what has a ``reply_to``; with
    ``confirmed_reply`` on a ``confirm_publish`` connection of its own, as
    rpcframe's and oslo.messaging's servers do.
    """
    conn = amqp.Connection(**params)
    conn.connect()
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)
    if variant.topic:
        channel.exchange_declare(queue, "topic", auto_delete=True)
        channel.queue_bind(queue, queue, queue)
    replies, confirming = channel, None
    if variant.confirmed_reply:
        confirming = amqp.Connection(**params, confirm_publish=True)
        confirming.connect()
        replies = confirming.channel()

    def on_message(message: Any) -> None:
        if variant.ack:
            channel.basic_ack(message.delivery_tag)
        if "reply_to" not in message.properties:
            return  # a cast
        replies.basic_publish(
            amqp.Message(message.body, correlation_id=message.properties.get("correlation_id")),
            routing_key=message.properties["reply_to"],
            mandatory=variant.confirmed_reply,
        )

    if variant.consumer:
        channel.basic_consume(queue, callback=on_message, no_ack=not variant.ack)
    ready.set()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.5)
    if confirming is not None:
        confirming.close()
    conn.close()


class EchoServers:
    """Bare echo servers, each in a process of its own; all stopped together on exit.

    Processes are spawned, so that they inherit no threads. A server's queue
    (auto-delete) and topic exchange go when it stops consuming; a queue
    nobody consumed stays, for the caller to delete.
    """

    def __init__(self, params: dict[str, Any], timeout: float) -> None:
        self._params = params
        self._timeout = timeout
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._processes: list[Any] = []

    def start(self, queue: str, variant: Variant) -> int:
        """Start a server of ``queue`` for ``variant``; its process id once it serves."""
        ready = self._context.Event()
        process = self._context.Process(
            target=_echo_server,
            args=(self._params, queue, variant, ready, self._stop),
            name="rpcframe-bench-raw-echo",
            daemon=True,
        )
        process.start()
        self._processes.append(process)
        if not ready.wait(self._timeout):
            raise RuntimeError(f"the raw echo server for {variant.name!r} did not start")
        assert process.pid is not None
        return process.pid

    def __enter__(self) -> EchoServers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(10)


class BareClient:
    """A client connection with an exclusive reply queue, and a ``confirm_publish`` one."""

    def __init__(self, params: dict[str, Any], timeout: float) -> None:
        self._timeout = timeout
        self._replies: list[Any] = []
        self._requests = 0
        with contextlib.ExitStack() as stack:
            self._calls = stack.enter_context(amqp.Connection(**params))
            self._channel = self._calls.channel()
            self._reply_queue, _, _ = self._channel.queue_declare("", exclusive=True)
            self._channel.basic_consume(
                self._reply_queue, callback=self._replies.append, no_ack=True
            )
            confirming = stack.enter_context(amqp.Connection(**params, confirm_publish=True))
            #: The channel of the confirmed publishes (each waits for its confirm).
            self.confirming = confirming.channel()
            self._open = stack.pop_all()

    def close(self) -> None:
        """Close both connections (the reply queue goes with its own)."""
        self._open.close()

    def round_trips(
        self, count: int, body: str, exchange: str, routing_key: str, properties: dict[str, Any]
    ) -> list[float]:
        """Send ``count`` requests, each after the reply to the last; their latencies."""
        channel, drain, replies = self._channel, self._calls.drain_events, self._replies
        latencies = []
        for _ in range(count):
            self._requests += 1
            started = time.perf_counter()
            channel.basic_publish(
                amqp.Message(
                    body,
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

    def confirmed_publishes(
        self, count: int, body: str, exchange: str, routing_key: str, properties: dict[str, Any]
    ) -> None:
        """Publish ``count`` messages, each waiting for its confirm."""
        channel = self.confirming
        for _ in range(count):
            channel.basic_publish(
                amqp.Message(body, **properties), exchange=exchange, routing_key=routing_key
            )


class RawAmqp:
    """Bare py-amqp round trips and confirmed publishes, ready to measure in chunks.

    On enter it starts two :class:`EchoServers`: a bare one and one doing
    the work of oslo.messaging's protocol. It opens a :class:`BareClient`,
    declares a queue of its own for the confirmed publishes, and warms up
    with ``warmup`` round trips to each server; on exit it deletes that
    queue, closes the client and stops the servers (their auto-delete queues
    and exchange go with them). In between, the measurements can be taken
    in as many chunks as wanted.
    """

    #: The expiration of the requests that follow oslo.messaging's protocol
    #: (milliseconds, as a call's timeout becomes it).
    PROTOCOL_EXPIRATION = "30000"

    BARE = Variant("bare")
    PROTOCOL = Variant("oslo protocol", topic=True, expiration=True, ack=True, confirmed_reply=True)

    def __init__(self, url: str, payload_size: int, warmup: int, timeout: float) -> None:
        self._params = amqp_params(url)
        self._warmup = warmup
        self._timeout = timeout
        suffix = uuid.uuid4().hex[:10]
        self._echo_queue = f"bench_raw_{suffix}"
        self._protocol_queue = f"bench_rawproto_{suffix}"
        self._publish_queue = f"bench_rawcast_{suffix}"
        value = "x" * payload_size
        self._echo_body = json.dumps({"method": "echo", "args": {"value": value}})
        self._bump_body = json.dumps({"method": "bump", "args": {"value": value}})
        self._protocol = {"expiration": self.PROTOCOL_EXPIRATION, "delivery_mode": 2}
        self._open: contextlib.ExitStack

    def __enter__(self) -> RawAmqp:
        with contextlib.ExitStack() as stack:
            servers = stack.enter_context(EchoServers(self._params, self._timeout))
            servers.start(self._echo_queue, self.BARE)
            servers.start(self._protocol_queue, self.PROTOCOL)
            self._client = BareClient(self._params, self._timeout)
            stack.callback(self._client.close)
            self._client.confirming.queue_declare(self._publish_queue)
            stack.callback(self._client.confirming.queue_delete, self._publish_queue)
            self.round_trips(self._warmup)
            self.protocol_round_trips(self._warmup)
            self._open = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.close()

    def round_trips(self, count: int) -> list[float]:
        """Send ``count`` requests, each after the reply to the last; return their latencies."""
        return self._client.round_trips(count, self._echo_body, "", self._echo_queue, {})

    def protocol_round_trips(self, count: int) -> list[float]:
        """The same, through a topic exchange, to the server doing oslo's protocol work."""
        queue = self._protocol_queue
        return self._client.round_trips(
            count, self._echo_body, self.PROTOCOL.exchange(queue), queue, self._protocol
        )

    def protocol_confirmed_casts(self, count: int) -> float:
        """Confirmed casts through the topic exchange, end to end; the seconds taken.

        Each waits for its confirm; the server acknowledges each as it takes
        it. The clock stops when a request sent after the last cast comes
        back: the queue is first in, first out, so the server has taken them all.
        """
        queue = self._protocol_queue
        started = time.perf_counter()
        self._client.confirmed_publishes(
            count, self._bump_body, self.PROTOCOL.exchange(queue), queue, {"delivery_mode": 2}
        )
        self.protocol_round_trips(1)
        return time.perf_counter() - started

    def confirmed_publishes(self, count: int) -> float:
        """Publish ``count`` messages, each waiting for its confirm; return the seconds taken."""
        started = time.perf_counter()
        self._client.confirmed_publishes(count, self._bump_body, "", self._publish_queue, {})
        return time.perf_counter() - started
