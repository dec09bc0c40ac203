"""What ``rpcframe bench`` measures: the workloads, and the bench they run on.

A :class:`Workload` is given a :class:`Bench` (a client of the bench
server, the :class:`BenchSettings`, a progress bar) and returns its
figures. :data:`WORKLOADS` are the ones ``rpcframe bench`` runs, in order;
new workloads subclass :class:`Workload` and are added there. The workloads
that have a raw py-amqp counterpart (:class:`RawMeasure`) alternate with it
in rounds when a :class:`Reference` is given (see :mod:`rpcframe.bench.rounds`).
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import functools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

from rpcframe.bench import nonblocking, notify
from rpcframe.bench.report import latency_figures
from rpcframe.bench.rounds import in_turn, shares
from rpcframe.bench.server import CONTROL_TIMEOUT, delete_queues

__all__ = [
    "WORKLOADS",
    "Bench",
    "BenchSettings",
    "CallsInFlight",
    "ConcurrentCalls",
    "ConfirmedCasts",
    "Notifications",
    "RawMeasure",
    "Reference",
    "SequentialCalls",
    "ServerMemory",
    "Streams",
    "Workload",
]


@dataclasses.dataclass(frozen=True)
class BenchSettings:
    """What ``rpcframe bench`` was asked for (its command-line options)."""

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
    #: Calls ``call_async`` keeps in flight from one thread.
    in_flight: int = 1000
    #: Chunks streamed of each size, over ``rounds`` streams.
    stream_chunks: int = 10_000
    #: The sizes of the streamed chunks, in bytes.
    chunk_sizes: tuple[int, ...] = (64, 4096)
    #: The streams' credit window (chunks the server may send ahead).
    window: int = 64


class RawMeasure(Protocol):
    """The raw references, measured a chunk at a time (:class:`rpcframe.bench.raw.RawAmqp`)."""

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
        for round_number, chunk in enumerate(shares(count, self.settings.rounds)):
            for side, step in in_turn(steps, round_number):
                spent[side] += step(chunk)
        return spent


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
            reference.figures[key] = latency_figures(raw_latencies, seconds)
        return latency_figures(latencies, elapsed)


class ConcurrentCalls(Workload):
    name = "call_concurrent"
    title = "concurrent calls (one client, N threads)"

    def run(self, bench: Bench) -> dict[str, Any]:
        threads = bench.settings.threads
        per_thread = max(1, bench.settings.calls // threads)
        with bench.progress(per_thread * threads, f"{threads}-thread calls") as advance:
            elapsed, latencies = _timed_in_threads(bench, per_thread * threads, threads, advance)
        return {"threads": threads, **latency_figures(latencies, elapsed)}


def _timed_in_threads(
    bench: Bench, count: int, threads: int, advance: Callable[[int], None]
) -> tuple[float, list[float]]:
    """``count`` echo calls shared by ``threads`` threads; (seconds, latencies). Raises theirs."""
    results: list[list[float]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def safe_advance(n: int) -> None:
        with lock:
            advance(n)

    def worker(share: int) -> None:
        try:
            results.append(bench.timed_calls(share, safe_advance))
        except Exception as exc:  # noqa: BLE001 - reported after the join
            errors.append(exc)

    workers = [
        threading.Thread(target=worker, args=(share,), name=f"rpcframe-bench-caller-{i}")
        for i, share in enumerate(shares(count, threads))
        if share
    ]
    started = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(bench.settings.timeout * max(1, count))
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed, [latency for chunk in results for latency in chunk]


class CallsInFlight(Workload):
    """``call_async`` from one thread: batches of ``in_flight`` calls sent, then collected.

    At least ``calls`` calls, in whole batches (see
    :func:`rpcframe.bench.nonblocking.calls_in_flight`), alternating in
    rounds with as many calls from N threads (``threads_per_s``), which the
    target divides by: measured in the same rounds, both see the same
    machine. rpcframe only.
    """

    name = "call_async_in_flight"
    title = "calls in flight (call_async, one thread)"

    def run(self, bench: Bench) -> dict[str, Any] | None:
        if bench.lib.__name__ != "rpcframe":
            return None  # oslo.messaging has no call_async
        settings = bench.settings
        in_flight, threads = settings.in_flight, settings.threads
        count = nonblocking.batches(settings.calls, in_flight)
        latencies: list[float] = []
        threaded: list[float] = []
        total = 2 * count * in_flight
        with bench.progress(total, f"{in_flight:,} in flight / {threads} threads") as advance:

            def in_flight_batches(batches: int) -> float:
                seconds, measured = nonblocking.calls_in_flight(
                    bench.client, bench.payload, batches, in_flight, settings.timeout
                )
                latencies.extend(measured)
                advance(batches * in_flight)
                return seconds

            def in_threads(batches: int) -> float:
                if not batches:
                    return 0.0
                seconds, measured = _timed_in_threads(bench, batches * in_flight, threads, advance)
                threaded.extend(measured)
                return seconds

            elapsed, threaded_elapsed = bench.alternate(count, in_flight_batches, in_threads)
        return {
            "in_flight": in_flight,
            **latency_figures(latencies, elapsed),
            "threads": threads,
            "threads_per_s": round(len(threaded) / threaded_elapsed, 1),
        }


class Streams(Workload):
    """Streams of the server's ``chunks`` generator, one per round and chunk size.

    The sizes alternate in rounds (see :meth:`Bench.alternate`) with chunks
    of sequential calls (``sequential_per_s``, which the target divides by:
    measured in the same rounds, both see the same machine); each size gets
    ``stream_chunks`` chunks in all, the sequential calls ``calls`` in all.
    Figures by size: chunks per second and megabytes (10**6 bytes) of chunk
    payload per second. rpcframe only.
    """

    name = "stream"
    title = "streams (client.stream)"

    def run(self, bench: Bench) -> dict[str, Any] | None:
        if bench.lib.__name__ != "rpcframe":
            return None  # oslo.messaging cannot stream
        settings = bench.settings
        count, sizes = settings.stream_chunks, settings.chunk_sizes
        calls = iter(shares(settings.calls, settings.rounds))
        latencies: list[float] = []
        total = count * len(sizes) + settings.calls
        with bench.progress(total, f"{self.title} / sequential calls") as advance:

            def side(size: int) -> Callable[[int], float]:
                def stream(chunk: int) -> float:
                    if not chunk:
                        return 0.0
                    timeout = nonblocking.stream_timeout(settings.timeout, chunk)
                    seconds = nonblocking.streamed_chunks(
                        bench.client, chunk, size, settings.window, timeout
                    )
                    advance(chunk)
                    return seconds

                return stream

            def sequential(chunk: int) -> float:
                # A round's share of the calls, whatever the round's share of chunks.
                return _timed_into(
                    latencies, functools.partial(bench.timed_calls, advance=advance), next(calls)
                )

            *spent, sequential_elapsed = bench.alternate(count, *map(side, sizes), sequential)
        figures: dict[str, Any] = {
            "chunks": count,
            "streams": len([chunk for chunk in shares(count, settings.rounds) if chunk]),
            "window": settings.window,
        }
        for size, seconds in zip(sizes, spent, strict=True):
            figures[f"per_s_{size}B"] = round(count / seconds, 1)
            figures[f"mb_per_s_{size}B"] = round(count * size / seconds / 1e6, 3)
        figures["sequential_calls"] = len(latencies)
        figures["sequential_per_s"] = round(len(latencies) / sequential_elapsed, 1)
        return figures


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
        for i, share in enumerate(shares(count, threads))
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(bench.settings.timeout * max(count, 1))


class Notifications(Workload):
    """Notifications from a ``messagingv2`` Notifier, counted in at a listener.

    rpcframe only (see :func:`rpcframe.bench.notify.measure`); the notifier
    and the listener share this process and the transport's broker.
    """

    name = "notifications"
    title = "notifications, end to end"

    def run(self, bench: Bench) -> dict[str, Any] | None:
        if bench.lib.__name__ != "rpcframe":
            return None
        settings = bench.settings
        topic = f"bench_notify_{uuid.uuid4().hex[:10]}"
        try:
            with bench.progress(1, f"{self.title} ({settings.casts:,})") as advance:
                figures = notify.measure(
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
    CallsInFlight(),
    Streams(),
    ConfirmedCasts(),
    Notifications(),
    ServerMemory(),
]
