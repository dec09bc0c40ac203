"""The raw py-amqp references of ``rpcframe bench --compare``: RabbitMQ with no framework.

:class:`RawAmqp` measures what no library on top of py-amqp can beat: a
request/reply round trip to an echo server that consumes without
acknowledgements and replies without waiting for anything, and a publish
that waits for its broker confirm. :mod:`rpcframe.bench` measures these in
rounds alternating with rpcframe's own sequential calls and confirmed casts.

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


def _raw_echo_server(params: dict[str, Any], queue: str, ready: Any, stop: Any) -> None:
    """Reply to every request on ``queue`` with its body, until ``stop`` is set."""
    conn = amqp.Connection(**params)
    conn.connect()
    channel = conn.channel()
    channel.queue_declare(queue, auto_delete=True)

    def on_request(message: Any) -> None:
        channel.basic_publish(
            amqp.Message(message.body, correlation_id=message.properties.get("correlation_id")),
            routing_key=message.properties["reply_to"],
        )

    channel.basic_consume(queue, callback=on_request, no_ack=True)
    ready.set()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.5)
    conn.close()


class RawAmqp:
    """Bare py-amqp round trips and confirmed publishes, ready to measure in chunks.

    On enter it starts the echo server in a process of its own (spawned, so
    that it inherits no threads), opens a client connection with an
    exclusive reply queue and a ``confirm_publish`` connection with a queue
    of its own, and warms up with ``warmup`` round trips; on exit it deletes
    that queue, closes both connections and stops the server (the reply
    queue and the server's auto-delete queue go with their connections).
    In between, the measurements can be taken in as many chunks as wanted.
    """

    def __init__(self, url: str, payload_size: int, warmup: int, timeout: float) -> None:
        self._params = amqp_params(url)
        self._warmup = warmup
        self._timeout = timeout
        suffix = uuid.uuid4().hex[:10]
        self._echo_queue = f"bench_raw_{suffix}"
        self._publish_queue = f"bench_rawcast_{suffix}"
        value = "x" * payload_size
        self._echo_body = json.dumps({"method": "echo", "args": {"value": value}})
        self._bump_body = json.dumps({"method": "bump", "args": {"value": value}})
        self._replies: list[Any] = []
        self._requests = 0
        self._open: contextlib.ExitStack

    def __enter__(self) -> RawAmqp:
        with contextlib.ExitStack() as stack:
            self._start_echo_server(stack)
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
            self._open = stack.pop_all()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.close()

    def _start_echo_server(self, stack: contextlib.ExitStack) -> None:
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Event(), context.Event()
        server = context.Process(
            target=_raw_echo_server,
            args=(self._params, self._echo_queue, ready, stop),
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
        channel, drain, replies = self._channel, self._client.drain_events, self._replies
        latencies = []
        for _ in range(count):
            self._requests += 1
            started = time.perf_counter()
            channel.basic_publish(
                amqp.Message(
                    self._echo_body, reply_to=self._reply_queue, correlation_id=str(self._requests)
                ),
                routing_key=self._echo_queue,
            )
            while not replies:
                drain(timeout=self._timeout)
            replies.pop()
            latencies.append(time.perf_counter() - started)
        return latencies

    def confirmed_publishes(self, count: int) -> float:
        """Publish ``count`` messages, each waiting for its confirm; return the seconds taken."""
        channel = self._publish_channel
        started = time.perf_counter()
        for _ in range(count):
            channel.basic_publish(amqp.Message(self._bump_body), routing_key=self._publish_queue)
        return time.perf_counter() - started
