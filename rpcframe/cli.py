"""The ``rpcframe`` command.

``rpcframe demo`` starts a server and a client and shows calls, a cast, a
remote error and a round-trip rate, on the embedded ``fake://`` transport by
default (no broker needed) or on any ``--url``. ``rpcframe notify`` sends one
notification and ``rpcframe listen`` prints notifications as they arrive
(:mod:`rpcframe.notify.commands`). ``rpcframe bench`` measures a transport
(see :mod:`rpcframe.bench`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from oslo_config import cfg

import rpcframe
from rpcframe.notify import commands as notify_commands

__all__ = ["main"]

DEMO_URL = "fake://"


class DemoEndpoint:
    """What the demo server offers: arithmetic, a cast target and a failure."""

    target = rpcframe.Target(version="1.2")

    def __init__(self) -> None:
        self.greeted = threading.Event()
        self.greetings: list[str] = []

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def whoami(self, ctxt: Any) -> dict[str, Any]:
        return {"user": ctxt.get("user"), "request_id": ctxt.get("request_id")}

    def greet(self, ctxt: Any, name: str) -> None:
        self.greetings.append(name)
        self.greeted.set()

    def divide(self, ctxt: Any, a: float, b: float) -> float:
        return a / b


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    if not args.verbose:
        # The demo provokes remote errors on purpose; the server would log them.
        logging.getLogger("rpcframe.rpc.server").setLevel(logging.CRITICAL)
    conf = cfg.ConfigOpts()
    conf([])
    topic = f"demo_{uuid.uuid4().hex[:8]}"
    with rpcframe.get_rpc_transport(conf, args.url) as transport:
        endpoint = DemoEndpoint()
        server = rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="demo-server"), [endpoint]
        )
        server.start()
        try:
            client = rpcframe.get_rpc_client(
                transport, rpcframe.Target(topic=topic, version="1.0"), timeout=args.timeout
            )
            ctxt = {"user": "demo-user", "request_id": "req-" + uuid.uuid4().hex[:8]}
            out.write(f"rpcframe demo on {transport.url.masked()} (topic {topic})\n")
            out.write(f"  call add(a=2, b=3)            -> {client.call(ctxt, 'add', a=2, b=3)}\n")
            out.write(f"  call whoami() sees context    -> {client.call(ctxt, 'whoami')}\n")
            v12 = client.prepare(version="1.2")
            out.write(f"  call at version 1.2           -> {v12.call(ctxt, 'echo', value='ok')}\n")
            client.cast(ctxt, "greet", name="world")
            if not endpoint.greeted.wait(args.timeout):
                out.write("  cast greet(name='world')      -> not handled in time\n")
                return 1
            out.write(f"  cast greet(name='world')      -> server got {endpoint.greetings[0]!r}\n")
            try:
                client.call(ctxt, "divide", a=1, b=0)
            except ZeroDivisionError as exc:
                first_line = str(exc).splitlines()[0]
                out.write(f"  call divide(a=1, b=0) raises  -> ZeroDivisionError: {first_line}\n")
            try:
                client.prepare(version="2.0").call(ctxt, "add", a=1, b=1)
            except rpcframe.RemoteError as exc:
                out.write(f"  call at version 2.0 raises    -> RemoteError({exc.exc_type})\n")
            for i in range(min(200, args.calls)):
                client.call(ctxt, "echo", value=i)
            started = time.perf_counter()
            for i in range(args.calls):
                client.call(ctxt, "echo", value=i)
            elapsed = time.perf_counter() - started
            out.write(
                f"  {f'{args.calls} sequential calls':<30}-> {args.calls / elapsed:,.0f} calls/s "
                f"({elapsed / args.calls * 1e6:.0f} us each)\n"
            )
        finally:
            server.stop()
            server.wait()
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpcframe", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a server and a client and show what they do")
    demo.add_argument("--url", default=DEMO_URL, help=f"transport URL (default {DEMO_URL})")
    demo.add_argument("--calls", type=int, default=5000, help="calls for the rate (default 5000)")
    demo.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    demo.set_defaults(run=_demo)
    notify_commands.add_commands(commands)
    bench = commands.add_parser(
        "bench",
        help="measure call and cast rates, latency and server memory on a transport",
        description="Measure a transport end to end; see rpcframe.bench for what is measured.",
    )
    bench.add_argument("--url", default=DEMO_URL, help=f"transport URL (default {DEMO_URL})")
    bench.add_argument("--calls", type=_positive_int, default=5000, help="calls per call workload")
    bench.add_argument(
        "--threads", type=_positive_int, default=8, help="threads of the concurrent calls"
    )
    bench.add_argument(
        "--casts", type=_positive_int, default=5000, help="casts in the cast workload"
    )
    bench.add_argument(
        "--memory-calls",
        type=int,
        default=100_000,
        help="calls before the second server memory reading (the first is after 1,000)",
    )
    bench.add_argument("--payload-size", type=int, default=100, help="bytes of payload per message")
    bench.add_argument("--warmup", type=int, default=300, help="calls made before measuring")
    bench.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    bench.add_argument(
        "--compare",
        action="store_true",
        help="also run oslo.messaging (if installed) and the raw py-amqp limits; print ratios",
    )
    bench.add_argument(
        "--rounds",
        type=_positive_int,
        default=5,
        help="chunks in which sequential calls and confirmed casts are measured; with "
        "--compare on RabbitMQ they alternate with the raw py-amqp references (default 5)",
    )
    bench.add_argument(
        "--protocol-costs",
        action="store_true",
        help="instead, measure on RabbitMQ what each part of the wire protocol costs, with "
        "bare py-amqp, beside rpcframe's calls and casts (see rpcframe.bench_costs)",
    )
    bench.add_argument(
        "--eventlet",
        action="store_true",
        help="instead, measure on RabbitMQ sequential and --threads green-thread calls in "
        "eventlet-patched processes, beside the same in threaded processes and oslo.messaging "
        "under eventlet, in interleaved rounds; print the ratios (see rpcframe.bench_eventlet)",
    )
    bench.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout)")
    bench.add_argument("--plot", metavar="FILE.png", help="draw the figures (needs matplotlib)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.set_defaults(run=_bench)
    return parser


def _bench(args: argparse.Namespace, out: TextIO) -> int:
    from rpcframe import bench

    return bench.main(args, out)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``rpcframe`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args, out or sys.stdout)
    except rpcframe.MessagingException as exc:
        print(f"rpcframe: {exc}", file=sys.stderr)
        return 2
