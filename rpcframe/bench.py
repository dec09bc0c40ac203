"""``rpcframe bench``: how fast a transport carries RPC, measured end to end.

It starts an RPC server (in a separate process for broker URLs; in this
process for ``fake://``, whose broker lives in one process) and, after a
warm-up, runs each registered workload against it with one client:

* **sequential calls**: one thread, one call at a time: calls per second and
  p50/p99 latency;
* **concurrent calls**: N threads (default 8) sharing one client;
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
(:mod:`rpcframe.bench_raw`): a request/reply round trip without any
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

New workloads subclass :class:`Workload` and are added to :data:`WORKLOADS`.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TextIO

from rpcframe.bench_report import percentile, plot, print_report, ratios
from rpcframe.bench_server import (
    CONTROL_TIMEOUT,
    ServerProcess,
    ServerThread,
    delete_queues,
    load_library,
)

__all__ = ["WORKLOADS", "BenchSettings", "Workload", "main", "run"]


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    url: str
    calls: int = 5000
    threads: int = 8
    casts: int = 5000
    memory_calls: int = 100_000
    payload_size: int = 100
    warmup: int = 300
    timeout: float = 30.0
    progress: bool = True
    rounds: int = 5


# -- workloads ----------------------------------------------------------------------------


class RawMeasure(Protocol):
    """The raw references, measured a chunk at a time (:class:`rpcframe.bench_raw.RawAmqp`)."""

    def round_trips(self, count: int) -> list[float]:
        """Make ``count`` request/reply round trips; return their latencies in seconds."""

    def protocol_round_trips(self, count: int) -> list[float]:
        """The same round trips, doing the broker work oslo.messaging's protocol asks for."""

    def confirmed_publishes(self, count: int) -> float:
        """Make ``count`` publishes, each confirmed; return the seconds they took."""

    def protocol_confirmed_casts(self, count: int) -> float:
        """Make ``count`` confirmed casts doing oslo's protocol work, end to end; the seconds."""


@dataclasses.dataclass
class Reference:
    """The raw references interleaved with rpcframe's workloads, and their figures.

    The workloads that alternate with ``measure`` put what it measured in
    ``figures``, under the keys of the report's ``raw`` section.
    """

    measure: RawMeasure
    figures: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


class Bench:
    """What a workload works with: a client, the settings, a progress bar.

    ``reference`` is set when rpcframe is compared on RabbitMQ: the
    workloads it has a counterpart for then alternate with it in rounds.
    """

    def __init__(
        self,
        lib: Any,
        client: Any,
        settings: BenchSettings,
        out: TextIO,
        reference: Reference | None = None,
    ) -> None:
        self.lib = lib
        self.client = client
        self.settings = settings
        self.payload = "x" * settings.payload_size
        self.reference = reference
        self._out = out

    @contextlib.contextmanager
    def progress(self, total: int, what: str) -> Iterator[Callable[[int], None]]:
        """Yield ``advance(n)``; shows a progress bar when asked for."""
        if not self.settings.progress:
            yield lambda n: None
            return
        from tqdm import tqdm

        with tqdm(total=total, desc=what, unit="msg", leave=False, file=sys.stderr) as bar:
            yield bar.update

    def timed_calls(self, count: int, advance: Callable[[int], None]) -> list[float]:
        """Make ``count`` echo calls; return their latencies in seconds."""
        call, payload = self.client.call, self.payload
        clock = time.perf_counter
        latencies = []
        for i in range(count):
            started = clock()
            call({}, "echo", value=payload)
            latencies.append(clock() - started)
            if i % 100 == 99:
                advance(100)
        advance(count % 100)
        return latencies

    def alternate(self, count: int, *sides: Callable[[int], float]) -> list[float]:
        """Run ``count`` of each side, in rounds; return the seconds each measured.

        Each side is given how many to do and returns the seconds measured.
        The count is split into ``settings.rounds`` chunks; each round runs
        one chunk of every side, the first side first in even rounds and the
        order reversed in odd ones, so that a drift in the machine's speed
        weighs on all alike. A single side still runs in the same chunks, so
        that rpcframe's figures mean the same with and without references.
        """
        spent = [0.0] * len(sides)
        steps = list(enumerate(sides))
        for round_number, chunk in enumerate(_shares(count, self.settings.rounds)):
            for side, step in steps if round_number % 2 == 0 else steps[::-1]:
                spent[side] += step(chunk)
        return spent


def _shares(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` shares that differ by one at most."""
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def _timed_into(latencies: list[float], measure: Callable[[int], list[float]], count: int) -> float:
    """Add the latencies of ``measure(count)`` to ``latencies``; return the seconds it took."""
    started = time.perf_counter()
    latencies.extend(measure(count))
    return time.perf_counter() - started


class Workload(abc.ABC):
    """One measured workload. ``run`` returns figures named in ``unit`` terms."""

    #: A short identifier, used as the key in the JSON report.
    name: str
    #: A heading for the human report.
    title: str

    @abc.abstractmethod
    def run(self, bench: Bench) -> dict[str, Any] | None:
        """Measure; return a flat dict of figures (None: not for this library)."""


def _latency_figures(latencies: list[float], elapsed: float) -> dict[str, Any]:
    latencies.sort()
    return {
        "per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 0.99) * 1e3, 3),
        "mean_ms": round(statistics.fmean(latencies) * 1e3, 3),
    }


class SequentialCalls(Workload):
    name = "call_sequential"
    title = "sequential calls (1 thread)"

    def run(self, bench: Bench) -> dict[str, Any]:
        count, reference = bench.settings.calls, bench.reference
        latencies: list[float] = []
        # The raw references to alternate with, by their key in the report.
        raw: dict[str, tuple[list[float], Callable[[int], list[float]]]] = {}
        if reference:
            raw["round_trip"] = ([], reference.measure.round_trips)
            raw["round_trip_oslo_protocol"] = ([], reference.measure.protocol_round_trips)
        with bench.progress(count, self.title) as advance:
            calls = functools.partial(bench.timed_calls, advance=advance)
            elapsed, *raw_elapsed = bench.alternate(
                count,
                functools.partial(_timed_into, latencies, calls),
                *(functools.partial(_timed_into, into, measure) for into, measure in raw.values()),
            )
        for (key, (raw_latencies, _measure)), seconds in zip(raw.items(), raw_elapsed, strict=True):
            assert reference is not None
            reference.figures[key] = {"calls": count, **_latency_figures(raw_latencies, seconds)}
        return {"calls": count, **_latency_figures(latencies, elapsed)}


class ConcurrentCalls(Workload):
    name = "call_concurrent"
    title = "concurrent calls (one client, N threads)"

    def run(self, bench: Bench) -> dict[str, Any]:
        threads = bench.settings.threads
        per_thread = max(1, bench.settings.calls // threads)
        results: list[list[float]] = []
        errors: list[BaseException] = []
        with bench.progress(per_thread * threads, f"{threads}-thread calls") as advance:
            lock = threading.Lock()

            def safe_advance(n: int) -> None:
                with lock:
                    advance(n)

            def worker() -> None:
                try:
                    results.append(bench.timed_calls(per_thread, safe_advance))
                except Exception as exc:  # noqa: BLE001 - reported after the join
                    errors.append(exc)

            workers = [
                threading.Thread(target=worker, name=f"rpcframe-bench-caller-{i}")
                for i in range(threads)
            ]
            started = time.perf_counter()
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join(bench.settings.timeout * per_thread)
            elapsed = time.perf_counter() - started
        if errors:
            raise errors[0]
        latencies = [latency for chunk in results for latency in chunk]
        return {"threads": threads, "calls": len(latencies), **_latency_figures(latencies, elapsed)}


class ConfirmedCasts(Workload):
    name = "cast_confirmed"
    title = "confirmed casts, end to end"

    def run(self, bench: Bench) -> dict[str, Any]:
        count, reference = bench.settings.casts, bench.reference
        client, payload = bench.client, bench.payload
        sending: list[float] = []
        with bench.progress(count, self.title) as advance:

            def casts(chunk: int) -> float:
                """Cast ``chunk`` times; the seconds until the server has them all."""
                client.call({}, "reset_casts")
                started = time.perf_counter()
                for i in range(chunk):
                    client.cast({}, "bump", value=payload)
                    if i % 100 == 99:
                        advance(100)
                sending.append(time.perf_counter() - started)
                received = client.prepare(timeout=CONTROL_TIMEOUT + 10).call(
                    {}, "casts_received", expected=chunk, timeout=CONTROL_TIMEOUT
                )
                elapsed = time.perf_counter() - started
                advance(chunk % 100)
                if received < chunk:
                    raise RuntimeError(f"the server received {received} of {chunk} casts")
                return elapsed

            sides: list[Callable[[int], float]] = [casts]
            if reference:
                sides += [
                    reference.measure.confirmed_publishes,
                    reference.measure.protocol_confirmed_casts,
                ]
            elapsed, *raw_elapsed = bench.alternate(count, *sides)
        if reference:
            reference.figures["confirmed_publish"] = {
                "publishes": count,
                "per_s": round(count / raw_elapsed[0], 1),
            }
            reference.figures["confirmed_cast_oslo_protocol"] = {
                "casts": count,
                "per_s": round(count / raw_elapsed[1], 1),
            }
        return {
            "casts": count,
            "per_s": round(count / elapsed, 1),
            "send_per_s": round(count / sum(sending), 1),
        }


class ServerMemory(Workload):
    """Server RSS after 1,000 calls and after ``memory_calls``, all made by N threads.

    The first reading comes after the same concurrency has run for a while,
    so that the server's worker threads exist in both readings; a reading
    half-way shows whether growth levels off.
    """

    name = "server_memory"
    title = "server memory"

    def run(self, bench: Bench) -> dict[str, Any]:
        total = max(bench.settings.memory_calls, 2000)
        threads = bench.settings.threads
        readings: dict[int, int] = {}
        with bench.progress(total, f"memory ({total:,} calls)") as advance:
            done = 0
            for mark in (1000, total // 2, total):
                _calls_in_threads(bench, mark - done, threads, advance)
                done = mark
                readings[mark] = bench.client.call({}, "rss")
        first, last = readings[1000], readings[total]
        return {
            "calls": total,
            "threads": threads,
            "rss_after_1000_mb": round(first / 2**20, 1),
            f"rss_after_{total // 2}_mb": round(readings[total // 2] / 2**20, 1),
            f"rss_after_{total}_mb": round(last / 2**20, 1),
            "ratio": round(last / first, 3),
        }


def _calls_in_threads(
    bench: Bench, count: int, threads: int, advance: Callable[[int], None]
) -> None:
    lock = threading.Lock()

    def safe_advance(n: int) -> None:
        with lock:
            advance(n)

    workers = [
        threading.Thread(
            target=bench.timed_calls, args=(share, safe_advance), name=f"rpcframe-bench-memory-{i}"
        )
        for i, share in enumerate(_shares(count, threads))
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(bench.settings.timeout * max(count, 1))


class Notifications(Workload):
    """Notifications from a ``messagingv2`` Notifier, counted in at a listener.

    rpcframe only (see :func:`rpcframe.notify.bench.measure`); the notifier
    and the listener share this process and the transport's broker.
    """

    name = "notifications"
    title = "notifications, end to end"

    def run(self, bench: Bench) -> dict[str, Any] | None:
        if bench.lib.__name__ != "rpcframe":
            return None
        from rpcframe.notify import bench as notify_bench

        settings = bench.settings
        topic = f"bench_notify_{uuid.uuid4().hex[:10]}"
        try:
            with bench.progress(1, f"{self.title} ({settings.casts:,})") as advance:
                figures = notify_bench.measure(
                    settings.url,
                    settings.casts,
                    payload_bytes=settings.payload_size,
                    warmup=settings.warmup,
                    timeout=CONTROL_TIMEOUT,
                    topic=topic,
                )
                advance(1)
        finally:
            if not settings.url.startswith("fake:"):
                delete_queues(settings.url, [f"{topic}.info"])
        if not figures["complete"]:
            raise RuntimeError(
                f"the listener received {figures['received']} of {settings.casts} notifications"
            )
        return {
            "notifications": settings.casts,
            "per_s": round(figures["end_to_end_per_s"], 1),
            "publish_per_s": round(figures["publish_per_s"], 1),
            "publish_p50_ms": round(figures["publish_p50_ms"], 3),
            "publish_p99_ms": round(figures["publish_p99_ms"], 3),
        }


#: The workloads ``rpcframe bench`` runs, in order.
WORKLOADS: list[Workload] = [
    SequentialCalls(),
    ConcurrentCalls(),
    ConfirmedCasts(),
    Notifications(),
    ServerMemory(),
]


def run_suite(
    library: str,
    settings: BenchSettings,
    out: TextIO,
    workloads: Sequence[Workload],
    reference: Reference | None = None,
) -> dict[str, Any]:
    """Start a server, warm up, run ``workloads``; return their figures by name.

    With a ``reference``, the workloads that have a raw counterpart alternate
    with it and leave its figures in ``reference.figures``.
    """
    lib, conf = load_library(library)
    topic = f"bench_{uuid.uuid4().hex[:10]}"
    in_process = settings.url.startswith("fake:")
    server_cls = ServerThread if in_process else ServerProcess
    transport = lib.get_rpc_transport(conf, settings.url)
    try:
        with server_cls(library, settings.url, topic):
            client = lib.get_rpc_client(
                transport, lib.Target(topic=topic), timeout=settings.timeout
            )
            bench = Bench(lib, client, settings, out, reference)
            with bench.progress(settings.warmup, "warm-up") as advance:
                bench.timed_calls(settings.warmup, advance)
            results: dict[str, Any] = {"server": "in process" if in_process else "own process"}
            for workload in workloads:
                figures = workload.run(bench)
                if figures is not None:
                    results[workload.name] = figures
            return results
    finally:
        transport.cleanup()
        if not in_process:
            delete_queues(settings.url, [topic, f"{topic}.bench-server"])


def _suite_in_child(library: str, settings: BenchSettings, pipe: Any) -> None:
    try:
        pipe.send(run_suite(library, settings, sys.stderr, WORKLOADS))
    except Exception as exc:  # noqa: BLE001 - reported by the parent
        pipe.send({"error": f"{type(exc).__name__}: {exc}"})


def _run_oslo(settings: BenchSettings) -> dict[str, Any]:
    """The same workloads on oslo.messaging, its client in a process of its own."""
    try:
        import oslo_messaging  # noqa: F401
    except ImportError:
        return {"error": "oslo.messaging is not installed"}
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    # Not a daemon: it starts the oslo.messaging server as a child of its own.
    process = context.Process(
        target=_suite_in_child,
        args=("oslo.messaging", settings, child),
        name="rpcframe-bench-oslo",
    )
    process.start()
    budget = 600 + settings.memory_calls * 0.01
    result = parent.recv() if parent.poll(budget) else {"error": "no result in time"}
    process.join(60)
    if process.is_alive():
        process.kill()
        process.join(10)
    return result


def measure_rpcframe(
    settings: BenchSettings,
    out: TextIO,
    raw: RawMeasure | None = None,
    workloads: Sequence[Workload] = WORKLOADS,
) -> dict[str, Any]:
    """The report's ``rpcframe`` section, and its ``raw`` one when ``raw`` is given.

    ``raw`` is measured in rounds alternating with rpcframe's sequential
    calls and confirmed casts (see :meth:`Bench.alternate`).
    """
    if raw is None:
        return {"rpcframe": run_suite("rpcframe", settings, out, workloads)}
    reference = Reference(raw)
    ours = run_suite("rpcframe", settings, out, workloads, reference)
    return {
        "rpcframe": ours,
        "raw": {
            name: figures | {"interleaved_rounds": settings.rounds}
            for name, figures in reference.figures.items()
        },
    }


def run(settings: BenchSettings, compare: bool = False, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run the benchmark; return the report (also what ``--json`` writes)."""
    from rpcframe.url import mask_url as _mask_raw

    report: dict[str, Any] = {
        "url": _mask_raw(settings.url),
        "settings": dataclasses.asdict(settings) | {"url": _mask_raw(settings.url)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    if compare and settings.url.startswith(("rabbit:", "amqp:")):
        from rpcframe.bench_raw import RawAmqp

        with RawAmqp(settings.url, settings.payload_size, settings.warmup, CONTROL_TIMEOUT) as raw:
            report |= measure_rpcframe(settings, out, raw)
    else:
        report |= measure_rpcframe(settings, out)
    if compare:
        report["oslo.messaging"] = _run_oslo(settings)
        report["ratios"] = ratios(report)
    return report


def main(args: Any, out: TextIO) -> int:
    """``rpcframe bench``, given parsed arguments (see :mod:`rpcframe.cli`)."""
    if args.protocol_costs:
        return _protocol_costs(args, out)  # needs neither tqdm nor matplotlib
    if args.eventlet:
        return _eventlet(args, out)
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
    )
    report = run(settings, compare=args.compare, out=out)
    if args.json == "-":
        out.write(json.dumps(report, indent=2) + "\n")
    else:
        print_report(report, out)
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(report, handle, indent=2)
    if args.plot:
        plot(report, args.plot)
    return 0


def _protocol_costs(args: Any, out: TextIO) -> int:
    """``rpcframe bench --protocol-costs``: RabbitMQ only, needs py-amqp."""
    if not _rabbit_with(args, "--protocol-costs", "amqp"):
        return 2
    from rpcframe import bench_costs

    report = bench_costs.measure(
        args.url,
        args.calls,
        args.casts,
        args.rounds,
        args.payload_size,
        args.timeout,
        _progress(args, "--protocol-costs"),
    )
    return _write(report, bench_costs.print_costs, args, out)


def _eventlet(args: Any, out: TextIO) -> int:
    """``rpcframe bench --eventlet``: RabbitMQ only, needs py-amqp and eventlet."""
    if not _rabbit_with(args, "--eventlet", "amqp", "eventlet"):
        return 2
    from rpcframe import bench_eventlet

    report = bench_eventlet.run(
        args.url,
        args.calls,
        args.threads,
        args.rounds,
        args.payload_size,
        args.warmup,
        args.timeout,
        _progress(args, "--eventlet"),
    )
    return _write(report, bench_eventlet.print_eventlet, args, out)


def _rabbit_with(args: Any, option: str, *extras: str) -> bool:
    """Whether the URL is RabbitMQ's and the extras are installed; says what is missing."""
    if args.url.startswith(("rabbit://", "amqp://")) and all(map(_importable, extras)):
        return True
    names = " and ".join(extras) + (" extras" if len(extras) > 1 else " extra")
    print(
        f"rpcframe bench: {option} measures RabbitMQ: give a rabbit:// URL and install the "
        f"{names} (pip install 'rpcframe[{','.join(extras)}]')",
        file=sys.stderr,
    )
    return False


def _progress(args: Any, option: str) -> Callable[[str], None]:
    def progress(what: str) -> None:
        if not args.no_progress:
            print(f"rpcframe bench {option}: {what}", file=sys.stderr)

    return progress


def _write(
    report: dict[str, Any],
    printer: Callable[[dict[str, Any], TextIO], None],
    args: Any,
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
    import importlib.util

    return importlib.util.find_spec(module) is not None
