"""``rpcframe demo``: a server and a client showing what they do, on any transport.

It starts a server and a client and shows calls, a cast, a remote error and
a round-trip rate, on the embedded ``fake://`` transport by default (no
broker needed; strict, so that it behaves as a broker's would) or on any
``--url``.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
import uuid
from typing import Any, TextIO

from oslo_config import cfg

import rpcframe
from rpcframe.cli import deadline, failures, values

__all__ = ["DemoEndpoint", "add_command", "run"]

#: Where the demo runs when given no ``--url``: the embedded transport, strict,
#: so that it shows the errors a broker's transport raises (the lenient
#: default re-raises an endpoint's exceptions as they are, as oslo's fake does).
DEFAULT_URL = "fake://?strict=true"

#: The RabbitMQ driver's schemes, and its option that makes RPC topic and
#: server queues (and their exchange) go away with their last consumer.
_RABBIT = ("rabbit", "amqp")
_AUTO_DELETE = "amqp_auto_delete"


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


def run(args: argparse.Namespace, out: TextIO) -> int:
    """``rpcframe demo``, given the arguments :func:`add_command` parsed."""
    if args.verbose:
        return _show(args, out)
    # The demo provokes remote errors on purpose; the server would log them.
    server_log = logging.getLogger("rpcframe.rpc.server")
    level = server_log.level
    server_log.setLevel(logging.CRITICAL)
    try:
        return _show(args, out)
    finally:
        server_log.setLevel(level)  # as it was, for whoever called this in-process


def _open(conf: cfg.ConfigOpts, url: str) -> rpcframe.Transport:
    """The demo's transport; on RabbitMQ its queues go away with the demo."""
    parsed = rpcframe.TransportURL.parse(conf, url)
    if parsed.transport in _RABBIT and _AUTO_DELETE not in parsed.query:
        # oslo's RPC server queues outlive their servers; the demo's serve no
        # one after it, and a run that is killed leaves nothing either.
        parsed.query[_AUTO_DELETE] = "true"
    return rpcframe.get_rpc_transport(conf, parsed)


def _show(args: argparse.Namespace, out: TextIO) -> int:
    conf = cfg.ConfigOpts()
    conf([])
    topic = f"demo_{uuid.uuid4().hex[:8]}"
    transport = _open(conf, args.url)
    try:
        endpoint = DemoEndpoint()
        # An exchange of its own too: it goes away with the demo's queues.
        server = rpcframe.get_rpc_server(
            transport,
            rpcframe.Target(topic=topic, exchange=topic, server="demo-server"),
            [endpoint],
        )
        deadline.start(server, args.timeout)
        try:
            client = rpcframe.get_rpc_client(
                transport,
                rpcframe.Target(topic=topic, exchange=topic, version="1.0"),
                timeout=args.timeout,
            )
            return _calls(client, endpoint, transport, topic, args, out)
        finally:
            deadline.stop(server)
    finally:
        deadline.settle("close the transport", transport.cleanup)


def _calls(
    client: rpcframe.RPCClient,
    endpoint: DemoEndpoint,
    transport: rpcframe.Transport,
    topic: str,
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """What the demo shows, once its server runs."""
    ctxt = {"user": "demo-user", "request_id": "req-" + uuid.uuid4().hex[:8]}
    out.write(f"rpcframe demo on {transport.url.masked()} (topic {topic})\n")
    out.write(f"  call add(a=2, b=3)            -> {client.call(ctxt, 'add', a=2, b=3)}\n")
    out.write(f"  call whoami() sees context    -> {client.call(ctxt, 'whoami')}\n")
    v12 = client.prepare(version="1.2")
    out.write(f"  call at version 1.2           -> {v12.call(ctxt, 'echo', value='ok')}\n")
    client.cast(ctxt, "greet", name="world")
    if not deadline.wait(endpoint.greeted, args.timeout):
        out.write("  cast greet(name='world')      -> not handled in time\n")
        return failures.FAILED
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
    out.flush()
    if args.calls == 0:
        out.write(f"  {'sequential calls':<30}-> not timed (--calls 0)\n")
        return failures.DONE
    for i in range(min(200, args.calls)):
        client.call(ctxt, "echo", value=i)
    started = time.perf_counter()
    for i in range(args.calls):
        client.call(ctxt, "echo", value=i)
    elapsed = max(time.perf_counter() - started, 1e-9)
    out.write(
        f"  {f'{args.calls} sequential calls':<30}-> {args.calls / elapsed:,.0f} calls/s "
        f"({elapsed / args.calls * 1e6:.0f} us each)\n"
    )
    return failures.DONE


def add_command(commands: Any) -> None:
    """Add ``demo`` to the ``rpcframe`` command's subparsers; it runs :func:`run`."""
    demo = commands.add_parser(
        "demo",
        help="run a server and a client and show what they do",
        description="Run a server and a client and show calls, a cast, remote errors "
        "and the round-trip rate. Exits 0 when all went as shown, 1 if the broker "
        "cannot be reached or a call times out, 2 for a bad option or URL, 130 on "
        "Ctrl-C. On RabbitMQ the demo's exchange and queues are auto-delete: they "
        "go away when it ends.",
    )
    demo.add_argument("--url", default=DEFAULT_URL, help=f"transport URL (default {DEFAULT_URL})")
    demo.add_argument(
        "--calls",
        type=values.count(0),
        default=5000,
        help="calls timed for the rate (default 5000; 0 skips the rate)",
    )
    values.add_timeout(demo, "per call, and to start the server")
    demo.set_defaults(run=run)
