"""The asyncio benchmark on RabbitMQ: rpcframe.aio against raw aiormq and threaded rpcframe.

:func:`measure` runs, in alternating rounds, each with its server in a
process of its own (spawned):

* ``aio_sequential``: awaited calls one after the other through
  :mod:`rpcframe.aio` (an asyncio client; an asyncio server whose
  ``echo`` is an ``async def``);
* ``raw_sequential``: the same round trip with no framework, a direct
  aiormq client and server: a request published to the server's queue
  with ``reply_to`` and ``correlation_id``, the reply to the client's own
  queue through the default exchange, JSON each way, no acknowledgements,
  no confirms (what no asyncio library on top of aiormq can beat);
* ``raw_protocol_sequential``: the raw round trip again, doing the broker
  work of oslo.messaging's protocol (topic exchange, expiration, requests
  acknowledged, replies mandatory and confirmed): what that work costs is
  the part of the gap to the raw figure no implementation can close;
* ``aio_in_flight``: ``in_flight`` awaited calls kept in flight from one
  event loop (as many tasks, each calling again as its call returns, as the
  threaded figure's threads do), until ``calls`` are done;
* ``aio_in_flight_to_threaded_server``: the same, calling the threaded
  rpcframe server of the next figure instead of an asyncio one;
* ``threaded``: threaded rpcframe, ``threads`` threads calling a threaded
  server, as ``rpcframe bench`` measures its concurrent rate.

With uvloop installed (``pip install 'rpcframe[uvloop]'``), the same
awaited and in-flight calls again with client and server on uvloop
(``aio_sequential_uvloop``, ``aio_in_flight_uvloop``, and their ratios
to the same figures on asyncio's own loop).

On ZeroMQ (``zmq+redis://``, or ``zmq://`` naming its hosts: the server
processes must be found) the raw reference is ``raw_zmq_sequential``
instead, the same round trip on bare pyzmq: a ``zmq.asyncio`` REQ socket
calling a REP socket in a process of its own that decodes each JSON
request and answers with a JSON reply, and there is no protocol figure
(the ZeroMQ driver's protocol is its own).

Each figure is the median of ``rounds`` rounds, in calls per second, and
the ratios are those of BENCHMARKS.md (awaited sequential ÷ raw aiormq,
1,000 in flight ÷ threaded 8 threads). ``python -m rpcframe.bench.aio
--url rabbit://...`` prints them as JSON. Needs the ``aio`` and ``amqp``
extras on RabbitMQ, the ``zmq`` one on ZeroMQ.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import multiprocessing
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

from rpcframe.bench.rounds import shares
from rpcframe.bench.server import CONTROL_TIMEOUT, ServerProcess, delete_queues

__all__ = ["main", "measure", "print_report"]

PAYLOAD = "x" * 64

_T = TypeVar("_T")


class _AioEndpoint:
    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def _run(coro: Awaitable[_T], on_uvloop: bool = False) -> _T:
    """``asyncio.run(coro)``, on a uvloop event loop if asked."""
    if not on_uvloop:
        return asyncio.run(coro)  # type: ignore[arg-type]
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def _serve_aio(url: str, topic: str, on_uvloop: bool, ready: Any, stop: Any) -> None:
    """An asyncio rpcframe server of ``topic`` until ``stop`` is set (on uvloop if asked)."""
    from oslo_config import cfg

    import rpcframe
    import rpcframe.aio

    async def main() -> None:
        conf = cfg.ConfigOpts()
        conf([])
        transport = rpcframe.aio.get_rpc_transport(conf, url)
        server = rpcframe.aio.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="bench-server"), [_AioEndpoint()]
        )
        await server.start()
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await server.stop()
        await server.wait()
        await transport.cleanup()

    _run(main(), on_uvloop)


def _aiormq_url(url: str) -> str:
    from rpcframe.bench.raw import amqp_params

    params = amqp_params(url)
    vhost = params["virtual_host"]
    path = "/" if vhost == "/" else "/" + vhost
    return f"amqp://{params['userid']}:{params['password']}@{params['host']}{path}"


def _raw_echo(url: str, queue: str, protocol: bool, ready: Any, stop: Any) -> None:
    """A bare aiormq echo server of ``queue``: parse the request, reply with JSON.

    With ``protocol``, it does the broker work oslo.messaging's protocol
    asks for (still without any framework): requests come through a topic
    exchange (named as the queue) and are acknowledged as they are taken;
    replies are mandatory and confirmed, on a confirm channel.
    """
    import aiormq
    from aiormq import spec

    async def main() -> None:
        conn = aiormq.Connection(_aiormq_url(url))
        await conn.connect()
        channel = await conn.channel(publisher_confirms=False)
        await channel.queue_declare(queue, auto_delete=True)
        replies = channel
        if protocol:
            await channel.exchange_declare(queue, exchange_type="topic", auto_delete=True)
            await channel.queue_bind(queue, queue, routing_key=queue)
            replies = await conn.channel(publisher_confirms=True)

        async def on_request(message: Any) -> None:
            if protocol:
                await channel.basic_ack(message.delivery.delivery_tag, wait=False)
            request = json.loads(message.body)
            props = message.header.properties
            await replies.basic_publish(
                json.dumps({"result": request["args"]["value"]}).encode(),
                routing_key=props.reply_to,
                properties=spec.Basic.Properties(correlation_id=props.correlation_id),
                mandatory=protocol,
            )

        await channel.basic_consume(queue, on_request, no_ack=not protocol)
        ready.set()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await conn.close()

    asyncio.run(main())


def _raw_zmq_echo(port: int, ready: Any, stop: Any) -> None:
    """A bare pyzmq echo server on ``port``: a REP socket, JSON in, JSON out."""
    import zmq

    ctx = zmq.Context()
    rep = ctx.socket(zmq.REP)
    rep.linger = 0
    rep.bind(f"tcp://127.0.0.1:{port}")
    ready.set()
    while not stop.is_set():
        if not rep.poll(100):
            continue
        request = json.loads(rep.recv())
        rep.send(json.dumps({"result": request["args"]["value"]}).encode())
    rep.close(0)
    ctx.term()


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _RawZmqClient:
    """The client half of the raw pyzmq round trip: a ``zmq.asyncio`` REQ socket."""

    def __init__(self, port: int) -> None:
        self._port = port

    async def __aenter__(self) -> _RawZmqClient:
        import zmq
        import zmq.asyncio

        self._ctx = zmq.asyncio.Context()
        self._req = self._ctx.socket(zmq.REQ)
        self._req.linger = 0
        self._req.connect(f"tcp://127.0.0.1:{self._port}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._req.close(0)
        self._ctx.term()

    async def call(self, value: Any) -> Any:
        await self._req.send(json.dumps({"method": "echo", "args": {"value": value}}).encode())
        return json.loads(await self._req.recv())["result"]


@contextlib.contextmanager
def _process(target: Callable[..., None], *args: Any) -> Iterator[None]:
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    process = context.Process(
        target=target, args=(*args, ready, stop), name="rpcframe-bench-aio", daemon=True
    )
    process.start()
    try:
        if not ready.wait(CONTROL_TIMEOUT):
            raise RuntimeError(f"the bench server {target.__name__} did not start")
        yield
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join(10)


class _RawClient:
    """The client half of the raw aiormq round trip."""

    def __init__(self, url: str, queue: str, protocol: bool) -> None:
        self._url = url
        self._queue = queue
        self._protocol = protocol
        self._waiting: dict[str, asyncio.Future[Any]] = {}

    async def __aenter__(self) -> _RawClient:
        import aiormq

        self._conn = aiormq.Connection(_aiormq_url(self._url))
        await self._conn.connect()
        self._channel = await self._conn.channel(publisher_confirms=False)
        declared = await self._channel.queue_declare("", exclusive=True, auto_delete=True)
        self._reply_to = declared.queue or ""
        await self._channel.basic_consume(self._reply_to, self._on_reply, no_ack=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._conn.close()

    async def _on_reply(self, message: Any) -> None:
        future = self._waiting.pop(message.header.properties.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(json.loads(message.body))

    async def call(self, value: Any) -> Any:
        from aiormq import spec

        correlation_id = uuid.uuid4().hex
        future = self._waiting[correlation_id] = asyncio.get_running_loop().create_future()
        await self._channel.basic_publish(
            json.dumps({"method": "echo", "args": {"value": value}}).encode(),
            exchange=self._queue if self._protocol else "",
            routing_key=self._queue,
            properties=spec.Basic.Properties(
                reply_to=self._reply_to,
                correlation_id=correlation_id,
                expiration="60000" if self._protocol else None,
            ),
        )
        return (await future)["result"]


async def _rate(count: int, call: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    for _ in range(count):
        await call()
    return count / (time.perf_counter() - started)


async def _rate_in_flight(count: int, in_flight: int, call: Callable[[], Awaitable[Any]]) -> float:
    """Calls a second with ``in_flight`` of them kept in flight: a call starts as one ends."""

    async def one_after_another(calls: int) -> None:
        for _ in range(calls):
            await call()

    started = time.perf_counter()
    await asyncio.gather(*map(one_after_another, shares(count, min(count, in_flight))))
    return count / (time.perf_counter() - started)


def _threaded_rate(url: str, topic: str, count: int, threads: int) -> float:
    from oslo_config import cfg

    import rpcframe

    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, url)
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=30)
        client.call({}, "echo", value=PAYLOAD)  # connect and warm up

        def work(n: int) -> None:
            for _ in range(n):
                client.call({}, "echo", value=PAYLOAD)

        workers = [
            threading.Thread(target=work, args=(share,), name=f"rpcframe-bench-aio-{i}")
            for i, share in enumerate(shares(count, threads))
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(CONTROL_TIMEOUT)
        return count / (time.perf_counter() - started)
    finally:
        transport.cleanup()


async def _aio_rates(url: str, topic: str, calls: int, in_flight: int) -> tuple[float, float]:
    from oslo_config import cfg

    import rpcframe
    import rpcframe.aio

    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.aio.get_rpc_transport(conf, url)
    try:
        client = rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=60)

        def call() -> Awaitable[Any]:
            return client.call({}, "echo", value=PAYLOAD)

        await _rate(min(200, calls), call)  # connect and warm up
        sequential = await _rate(calls, call)
        concurrent = await _rate_in_flight(max(calls, in_flight), in_flight, call)
        return sequential, concurrent
    finally:
        await transport.cleanup()


def is_zmq(url: str) -> bool:
    return url.startswith("zmq")


async def _raw_rate(url: str, queue: str, calls: int, protocol: bool = False) -> float:
    raw_client: Any = _RawZmqClient(int(queue)) if is_zmq(url) else _RawClient(url, queue, protocol)
    async with raw_client as raw:

        def call() -> Awaitable[Any]:
            return raw.call(PAYLOAD)

        await _rate(min(200, calls), call)
        return await _rate(calls, call)


def measure(
    url: str,
    *,
    calls: int = 2000,
    in_flight: int = 1000,
    threads: int = 8,
    rounds: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the rounds (see the module documentation); figures and ratios as a dict."""
    tag = uuid.uuid4().hex[:8]
    zmq = is_zmq(url)
    aio_topic, threaded_topic, raw_queue, protocol_queue = (
        f"bench_aio_{tag}",
        f"bench_sync_{tag}",
        str(_free_port()) if zmq else f"bench_raw_{tag}",
        f"bench_rawp_{tag}",
    )
    raw = "raw_zmq_sequential" if zmq else "raw_sequential"
    uvloop, uv_topic = uvloop_installed(), f"bench_uv_{tag}"
    figures: dict[str, list[float]] = {
        "aio_sequential": [],
        raw: [],
        "aio_in_flight": [],
        "aio_in_flight_to_threaded_server": [],
        "threaded": [],
    }
    if not zmq:
        figures["raw_protocol_sequential"] = []
    if uvloop:
        figures["aio_sequential_uvloop"] = []
        figures["aio_in_flight_uvloop"] = []
    say = progress or (lambda _: None)
    try:
        with contextlib.ExitStack() as servers:
            servers.enter_context(_process(_serve_aio, url, aio_topic, False))
            if uvloop:
                servers.enter_context(_process(_serve_aio, url, uv_topic, True))
            if zmq:
                servers.enter_context(_process(_raw_zmq_echo, int(raw_queue)))
            else:
                servers.enter_context(_process(_raw_echo, url, raw_queue, False))
                servers.enter_context(_process(_raw_echo, url, protocol_queue, True))
            servers.enter_context(ServerProcess("rpcframe", url, threaded_topic))
            for number in range(rounds):
                say(f"round {number + 1}/{rounds}: raw {'pyzmq' if zmq else 'aiormq'}")
                figures[raw].append(asyncio.run(_raw_rate(url, raw_queue, calls)))
                if not zmq:
                    say(f"round {number + 1}/{rounds}: raw aiormq doing oslo's protocol")
                    figures["raw_protocol_sequential"].append(
                        asyncio.run(_raw_rate(url, protocol_queue, calls, protocol=True))
                    )
                say(f"round {number + 1}/{rounds}: rpcframe.aio")
                sequential, concurrent = asyncio.run(_aio_rates(url, aio_topic, calls, in_flight))
                figures["aio_sequential"].append(sequential)
                figures["aio_in_flight"].append(concurrent)
                if uvloop:
                    say(f"round {number + 1}/{rounds}: rpcframe.aio on uvloop, both ends")
                    sequential, concurrent = _run(
                        _aio_rates(url, uv_topic, calls, in_flight), on_uvloop=True
                    )
                    figures["aio_sequential_uvloop"].append(sequential)
                    figures["aio_in_flight_uvloop"].append(concurrent)
                say(f"round {number + 1}/{rounds}: rpcframe.aio to a threaded server")
                _, concurrent = asyncio.run(
                    _aio_rates(url, threaded_topic, min(200, calls), in_flight)
                )
                figures["aio_in_flight_to_threaded_server"].append(concurrent)
                say(f"round {number + 1}/{rounds}: threaded, {threads} threads")
                figures["threaded"].append(_threaded_rate(url, threaded_topic, calls, threads))
    finally:
        delete_queues(url, [aio_topic, f"{aio_topic}.bench-server"])
        delete_queues(url, [uv_topic, f"{uv_topic}.bench-server"])
        delete_queues(url, [threaded_topic, f"{threaded_topic}.bench-server"])
        delete_queues(url, [raw_queue, protocol_queue])
    medians = {name: statistics.median(values) for name, values in figures.items()}
    if zmq:
        ratios = {
            "aio_sequential / raw_zmq_sequential": medians["aio_sequential"] / medians[raw],
        }
    else:
        ratios = {
            "aio_sequential / raw_aiormq_sequential": medians["aio_sequential"]
            / medians["raw_sequential"],
            "raw_protocol_sequential / raw_aiormq_sequential": medians["raw_protocol_sequential"]
            / medians["raw_sequential"],
            "aio_sequential / raw_protocol_sequential": medians["aio_sequential"]
            / medians["raw_protocol_sequential"],
        }
    ratios[f"aio_{in_flight}_in_flight / threaded_{threads}_threads"] = (
        medians["aio_in_flight"] / medians["threaded"]
    )
    if uvloop:
        ratios["aio_sequential_uvloop / aio_sequential"] = (
            medians["aio_sequential_uvloop"] / medians["aio_sequential"]
        )
        ratios["aio_in_flight_uvloop / aio_in_flight"] = (
            medians["aio_in_flight_uvloop"] / medians["aio_in_flight"]
        )
    return {
        "calls_per_second": medians,
        "rounds": figures,
        "ratios": ratios,
        "settings": {
            "calls": calls,
            "in_flight": in_flight,
            "threads": threads,
            "rounds": rounds,
            "payload_bytes": len(PAYLOAD),
            "uvloop": uvloop,
        },
    }


def print_report(report: dict[str, Any], out: Any) -> None:
    """The human report of ``rpcframe bench --asyncio``."""
    settings = report["settings"]
    print(
        f"rpcframe bench --asyncio ({settings['calls']} calls a round, {settings['rounds']} "
        f"rounds, {settings['in_flight']} in flight, {settings['threads']} threads; medians)",
        file=out,
    )
    for name, value in report["calls_per_second"].items():
        runs = ", ".join(f"{v:,.0f}" for v in report["rounds"][name])
        print(f"  {name:<36} {value:>9,.1f} calls/s   ({runs})", file=out)
    # The targets of BENCHMARKS.md.
    targets = {
        "aio_sequential / raw_aiormq_sequential": 1.0,
        f"aio_{settings['in_flight']}_in_flight / threaded_{settings['threads']}_threads": 1.5,
    }
    if "aio_sequential / raw_zmq_sequential" in report["ratios"]:
        targets = {}  # BENCHMARKS.md sets the asyncio targets on RabbitMQ only
    print("ratios:", file=out)
    for name, value in report["ratios"].items():
        target = targets.get(name)
        wanted = f" (target >= {target:g})" if target is not None else ""
        print(f"  {value:8.3f}  {name}{wanted}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpcframe.bench.aio", description=__doc__)
    parser.add_argument("--url", default="rabbit://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    result = measure(
        args.url,
        calls=args.calls,
        in_flight=args.in_flight,
        threads=args.threads,
        rounds=args.rounds,
        progress=lambda text: print(text, file=sys.stderr, flush=True),
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
