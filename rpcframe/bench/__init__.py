"""``rpcframe bench``: how fast a transport carries RPC, measured end to end.

It starts an RPC server (in a separate process for broker URLs; in this
process for ``fake://``, whose broker lives in one process) and, after a
warm-up, runs each registered workload against it with one client:

* **sequential calls**: one thread, one call at a time: calls per second and
  p50/p99 latency;
* **concurrent calls**: N threads (default 8) sharing one client;
* **calls in flight**: ``call_async`` from one thread, 1,000 calls sent,
  then their results collected, batch after batch: calls per second and
  p50/p99 latency from a call's send to its result; divided by the rate of
  N threads of calls measured in alternating rounds with it (rpcframe only);
* **streams**: ``client.stream`` over a generator endpoint yielding chunks
  of 64 bytes and of 4 KiB: chunks and megabytes per second; divided by the
  rate of sequential calls measured in alternating rounds with them
  (rpcframe only);
* **confirmed casts**: one thread casting; the clock stops when the server
  has received every cast (each cast returns once the broker confirmed it);
* **notifications**: a ``messagingv2`` Notifier publishing (each publish
  returns once the broker confirmed it) to a listener that counts them in
  (rpcframe only);
* **server memory**: the server's RSS after 1,000 calls and after many more
  (default 100,000), and their ratio.

Every request carries a string payload of a stated size and the server
echoes it. ``--compare`` runs the same workloads on oslo.messaging (when it
is importable; client and server each in their own process) and, on
RabbitMQ, measures the raw py-amqp limits with code of its own
(:mod:`rpcframe.bench.raw`): a request/reply round trip without any
framework, the same round trip doing the broker work oslo.messaging's
protocol asks for (topic exchange, expiration, acknowledgement, mandatory
confirmed reply), a publish that waits for its broker confirm, and
confirmed casts doing the protocol's work end to end. It then prints the
ratios the project's performance targets are stated in, and how the
protocol's own cost compares.

The raw references are measured in alternating rounds with rpcframe's
sequential calls and confirmed casts (``--rounds``, default 5): a chunk of
rpcframe's calls, then a chunk of raw round trips, then raw first in the
next round, and so on. A shared machine's speed drifts by tens of percent
over minutes, so a ratio of figures measured minutes apart says as much
about the drift as about rpcframe; interleaved, both sides see the same
machine, and the ratio from one run is stable.

``--protocol-costs`` (:mod:`rpcframe.bench.costs`) and ``--eventlet``
(:mod:`rpcframe.bench.patched`) measure instead what each part of the wire
protocol costs, and calls in eventlet-patched processes.

This module owns the command: its arguments (:func:`add_command`, for the
``rpcframe`` command to dispatch to), :func:`main` and :func:`run`. New
workloads subclass :class:`~rpcframe.bench.workloads.Workload` and are added
to :data:`~rpcframe.bench.workloads.WORKLOADS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any, TextIO

from rpcframe.bench.report import IN_PROCESS, RAW_ZMQ, plot, print_report, ratios
from rpcframe.bench.server import CONTROL_TIMEOUT
from rpcframe.bench.suite import measure_oslo, measure_rpcframe
from rpcframe.bench.workloads import WORKLOADS, BenchSettings, Workload
from rpcframe.url import mask_url

__all__ = ["WORKLOADS", "BenchSettings", "Workload", "add_command", "main", "run"]

#: What ``rpcframe bench`` measures when given no ``--url``.
DEFAULT_URL = "fake://"

#: A report and what prints it: what ``--protocol-costs`` and ``--eventlet`` measure.
_Measured = tuple[dict[str, Any], Callable[[dict[str, Any], TextIO], None]]


def run(settings: BenchSettings, compare: bool = False, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the benchmark; return the report (also what ``--json`` writes)."""
    report: dict[str, Any] = {
        "url": mask_url(settings.url),
        "settings": dataclasses.asdict(settings) | {"url": mask_url(settings.url)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if compare and settings.url.startswith(("rabbit:", "amqp:")):
        from rpcframe.bench.raw import RawAmqp

        with RawAmqp(settings.url, settings.payload_size, settings.warmup, CONTROL_TIMEOUT) as raw:
            report |= measure_rpcframe(settings, out, raw)
    elif compare and settings.url.startswith("fake:"):
        from rpcframe.bench.bare import BareInProcess

        with BareInProcess(settings.payload_size, settings.warmup) as bare:
            report |= measure_rpcframe(settings, out, bare)
        report["reference"] = IN_PROCESS
    elif compare and settings.url.startswith("zmq"):
        from rpcframe.bench.rawzmq import RawZmq

        with RawZmq(settings.payload_size, settings.warmup) as raw_zmq:
            report |= measure_rpcframe(settings, out, raw_zmq)
        report["reference"] = RAW_ZMQ
    else:
        report |= measure_rpcframe(settings, out)
    if compare:
        report["oslo.messaging"] = measure_oslo(settings)
    # Some ratios need no reference: calls in flight and streams divide by rpcframe's calls.
    report["ratios"] = ratios(report)
    return report


def main(args: argparse.Namespace, out: TextIO) -> int:
    """``rpcframe bench``, given the arguments :func:`add_command` parsed."""
    if args.protocol_costs:
        # Needs neither tqdm nor matplotlib.
        return _on_rabbit(args, out, "--protocol-costs", ("amqp",), _protocol_costs)
    if args.eventlet:
        return _on_rabbit(args, out, "--eventlet", ("amqp", "eventlet"), _eventlet)
    if args.asyncio:
        if args.url.startswith("zmq"):
            return _on_zmq(args, out, "--asyncio", _asyncio)
        return _on_rabbit(args, out, "--asyncio", ("aio", "bench"), _asyncio, ("amqp", "aiormq"))
    if not args.no_progress or args.plot:
        missing = [m for m in ("tqdm", "matplotlib") if not _importable(m)]
        needed = [m for m in missing if m == "tqdm" or args.plot]
        if needed:
            print(
                f"rpcframe bench: {', '.join(needed)} missing; install the bench extra: "
                "pip install 'rpcframe[bench]' (or pass --no-progress)",
                file=sys.stderr,
            )
            return 2
    settings = BenchSettings(
        url=args.url,
        calls=args.calls,
        threads=args.threads,
        casts=args.casts,
        memory_calls=args.memory_calls,
        payload_size=args.payload_size,
        warmup=args.warmup,
        timeout=args.timeout,
        progress=not args.no_progress,
        rounds=args.rounds,
        in_flight=args.in_flight,
        stream_chunks=args.stream_chunks,
        chunk_sizes=args.chunk_sizes,
        window=args.window,
    )
    report = run(settings, compare=args.compare, out=out)
    status = _write(report, print_report, args, out)
    if args.plot:
        plot(report, args.plot)
    return status


def _protocol_costs(args: argparse.Namespace, progress: Callable[[str], None]) -> _Measured:
    """``rpcframe bench --protocol-costs``: needs py-amqp."""
    from rpcframe.bench import costs

    report = costs.measure(
        args.url, args.calls, args.casts, args.rounds, args.payload_size, args.timeout, progress
    )
    return report, costs.print_costs


def _eventlet(args: argparse.Namespace, progress: Callable[[str], None]) -> _Measured:
    """``rpcframe bench --eventlet``: needs py-amqp and eventlet."""
    from rpcframe.bench import patched

    report = patched.run(
        args.url,
        args.calls,
        args.threads,
        args.rounds,
        args.payload_size,
        args.warmup,
        args.timeout,
        progress,
        patched.NonBlocking(args.in_flight, args.stream_chunks, args.chunk_sizes, args.window),
    )
    return report, patched.print_eventlet


def _asyncio(args: argparse.Namespace, progress: Callable[[str], None]) -> _Measured:
    """``rpcframe bench --asyncio``: needs py-amqp (the aio extra) and aiormq (the bench extra)."""
    from rpcframe.bench import aio

    report = aio.measure(
        args.url,
        calls=args.calls,
        in_flight=args.in_flight,
        threads=args.threads,
        rounds=args.rounds,
        progress=progress,
    )
    return report, aio.print_report


def _on_rabbit(
    args: argparse.Namespace,
    out: TextIO,
    option: str,
    extras: tuple[str, ...],
    measure: Callable[[argparse.Namespace, Callable[[str], None]], _Measured],
    modules: tuple[str, ...] | None = None,
) -> int:
    """Write what ``measure`` reports, if the URL is RabbitMQ's and the extras are installed.

    ``modules``: what the extras install, by module name (default: the extras' names).
    """
    needed = extras if modules is None else modules
    if not (args.url.startswith(("rabbit://", "amqp://")) and all(map(_importable, needed))):
        names = " and ".join(extras) + (" extras" if len(extras) > 1 else " extra")
        print(
            f"rpcframe bench: {option} measures RabbitMQ: give a rabbit:// URL and install the "
            f"{names} (pip install 'rpcframe[{','.join(extras)}]')",
            file=sys.stderr,
        )
        return 2

    return _measured(args, out, option, measure)


def _on_zmq(
    args: argparse.Namespace,
    out: TextIO,
    option: str,
    measure: Callable[[argparse.Namespace, Callable[[str], None]], _Measured],
) -> int:
    """Write what ``measure`` reports, if the URL lets processes find each other on ZeroMQ."""
    url = urllib.parse.urlsplit(args.url)
    if not _importable("zmq") or (url.scheme == "zmq" and not url.hostname):
        print(
            f"rpcframe bench: {option} on ZeroMQ runs its servers in processes of their own: "
            "give a zmq+redis:// URL (or a zmq:// one naming the servers' host:port) and "
            "install the zmq extra (pip install 'rpcframe[zmq]')",
            file=sys.stderr,
        )
        return 2
    return _measured(args, out, option, measure)


def _measured(
    args: argparse.Namespace,
    out: TextIO,
    option: str,
    measure: Callable[[argparse.Namespace, Callable[[str], None]], _Measured],
) -> int:
    def progress(what: str) -> None:
        if not args.no_progress:
            print(f"rpcframe bench {option}: {what}", file=sys.stderr)

    report, printer = measure(args, progress)
    return _write(report, printer, args, out)


def _write(
    report: dict[str, Any],
    printer: Callable[[dict[str, Any], TextIO], None],
    args: argparse.Namespace,
    out: TextIO,
) -> int:
    """The report as JSON on ``out`` (``--json -``), or printed and saved to ``--json FILE``."""
    if args.json == "-":
        out.write(json.dumps(report, indent=2) + "\n")
        return 0
    printer(report, out)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# -- the arguments ------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated sizes in bytes, each at least 1."""
    return tuple(_positive_int(part.strip()) for part in text.split(","))


def add_command(commands: Any) -> None:
    """Add ``bench`` to the ``rpcframe`` command's subparsers; it runs :func:`main`."""
    bench = commands.add_parser(
        "bench",
        help="measure call and cast rates, latency and server memory on a transport",
        description="Measure a transport end to end; see rpcframe.bench for what is measured.",
    )
    bench.add_argument("--url", default=DEFAULT_URL, help=f"transport URL (default {DEFAULT_URL})")
    bench.add_argument("--calls", type=_positive_int, default=5000, help="calls per call workload")
    bench.add_argument(
        "--threads", type=_positive_int, default=8, help="threads of the concurrent calls"
    )
    bench.add_argument(
        "--casts", type=_positive_int, default=5000, help="casts in the cast workload"
    )
    bench.add_argument(
        "--in-flight",
        type=_positive_int,
        default=1000,
        help="calls call_async keeps in flight from one thread (default 1000); at least "
        "--calls calls are made, in whole batches",
    )
    bench.add_argument(
        "--stream-chunks",
        type=_positive_int,
        default=10_000,
        help="chunks streamed of each size, over --rounds streams (default 10000)",
    )
    bench.add_argument(
        "--chunk-sizes",
        type=_sizes,
        default=(64, 4096),
        metavar="BYTES[,BYTES...]",
        help="sizes of the streamed chunks (default 64,4096)",
    )
    bench.add_argument(
        "--window",
        type=_positive_int,
        default=64,
        help="the streams' credit window: chunks the server may send ahead (default 64)",
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
        "bare py-amqp, beside rpcframe's calls and casts (see rpcframe.bench.costs)",
    )
    bench.add_argument(
        "--eventlet",
        action="store_true",
        help="instead, measure on RabbitMQ sequential and --threads green-thread calls in "
        "eventlet-patched processes, beside the same in threaded processes and oslo.messaging "
        "under eventlet, in interleaved rounds; print the ratios (see rpcframe.bench.patched)",
    )
    bench.add_argument(
        "--asyncio",
        action="store_true",
        help="instead, measure on RabbitMQ (or ZeroMQ, zmq+redis://) rpcframe.aio's awaited "
        "calls and --in-flight calls from one event loop, beside a raw aiormq (or pyzmq) round "
        "trip and threaded calls, in interleaved rounds; print the ratios (see "
        "rpcframe.bench.aio)",
    )
    bench.add_argument("--json", metavar="FILE", help="write the report as JSON ('-': stdout)")
    bench.add_argument("--plot", metavar="FILE.png", help="draw the figures (needs matplotlib)")
    bench.add_argument("--no-progress", action="store_true", help="no progress bars")
    bench.set_defaults(run=main)
