"""``rpcframe bench --eventlet``: RPC calls in eventlet-patched processes, beside threads and oslo.

Most OpenStack services call ``eventlet.monkey_patch()`` first; rpcframe
must be as fast there as in a threaded process. Three *sides* are measured
in one run on RabbitMQ, each a client process of its own whose server runs
in another process:

* **rpcframe under eventlet**: client and server monkey-patched before
  anything else is imported; the server on the ``eventlet`` executor; the
  concurrent calls made by N green threads;
* **rpcframe threaded**: neither patched; the ``threading`` executor; N
  threads;
* **oslo.messaging under eventlet**: as the first, with oslo.messaging.

Each side makes sequential calls (one at a time: calls per second, p50 and
p99) and concurrent calls (N threads sharing one client). The rpcframe
sides also keep calls in flight with ``call_async`` from one (green) thread
and consume streams (:mod:`rpcframe.bench.nonblocking`); oslo.messaging has
neither, and its side says so in the report. They run in rounds: a chunk of
sequential calls on each side in turn (the order reversed every other
round), then a chunk of concurrent calls the same way, then of calls in
flight and of each size of stream, so that a shared machine's drift in
speed weighs on every side alike and the ratios of one run are stable. The
ratios are the targets: rpcframe under eventlet ÷ rpcframe threaded
(≥ 0.8), and ÷ oslo.messaging under eventlet (≥ 2.5); and on each rpcframe
side, calls in flight ÷ N-thread calls (≥ 1) and stream chunks ÷ sequential
calls (≥ 10).

The sides talk to this process in JSON lines over their standard input and
output (:class:`ProcessSide`); anything with the same two methods can stand
in for one (:class:`Side`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any, Protocol, TextIO

from rpcframe.bench import nonblocking
from rpcframe.bench.report import latency_figures, print_ratios
from rpcframe.bench.rounds import in_turn, shares
from rpcframe.bench.server import CONTROL_TIMEOUT, delete_queues
from rpcframe.url import mask_url

__all__ = [
    "NO_NONBLOCKING",
    "SIDES",
    "NonBlocking",
    "ProcessSide",
    "Side",
    "measure",
    "print_eventlet",
    "ratios",
]

#: The sides of a run: (name in the report, library, monkey-patched).
SIDES = (
    ("rpcframe (eventlet)", "rpcframe", True),
    ("rpcframe (threads)", "rpcframe", False),
    ("oslo.messaging (eventlet)", "oslo.messaging", True),
)
_OURS, _THREADED, _OSLO = (name for name, _, _ in SIDES)

#: What a side's process runs: monkey-patches first (when asked), then the rest.
_BOOT = (
    "import sys\n"
    "if sys.argv[1] == 'patched':\n"
    "    import warnings; warnings.simplefilter('ignore')\n"
    "    import eventlet; eventlet.monkey_patch()\n"
    "from rpcframe.bench.patched import child\n"
    "child(sys.argv[2], sys.argv[3])\n"
)


#: Why a side has no figures of calls in flight and streams.
NO_NONBLOCKING = "oslo.messaging has no call_async and cannot stream"


class Side(Protocol):
    """One side of the run: a client (and its server) somewhere.

    ``nonblocking`` says whether it has :meth:`in_flight` and :meth:`stream`
    (rpcframe's sides do, oslo.messaging's does not).
    """

    nonblocking: bool

    def sequential(self, count: int) -> tuple[float, list[float]]:
        """Make ``count`` calls one at a time; (seconds, latencies in seconds)."""

    def concurrent(self, count: int, threads: int) -> tuple[float, list[float]]:
        """Make ``count`` calls from ``threads`` threads; (seconds, latencies)."""

    def in_flight(self, batches: int, in_flight: int) -> tuple[float, list[float]]:
        """Make ``batches`` batches of ``in_flight`` calls in flight; (seconds, latencies)."""

    def stream(self, count: int, size: int, window: int) -> float:
        """Consume a stream of ``count`` chunks of ``size`` bytes; the seconds it took."""


@dataclasses.dataclass(frozen=True)
class NonBlocking:
    """What the sides that can are asked of calls in flight and streams."""

    in_flight: int = 1000
    stream_chunks: int = 10_000
    chunk_sizes: tuple[int, ...] = (64, 4096)
    window: int = 64


# -- this process: the rounds and the report ----------------------------------------------


def measure(
    sides: dict[str, Side],
    calls: int,
    threads: int,
    rounds: int,
    progress: Callable[[str], None] = lambda what: None,
    asked: NonBlocking | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every side's calls in interleaved rounds; the figures of each side by name.

    With ``asked``, the sides that can also keep calls in flight and stream.
    """
    # The latencies and the seconds spent, by side and by kind of calls.
    spent: dict[str, dict[str, list[Any]]] = {
        name: {"sequential": [[], 0.0], "concurrent": [[], 0.0], "in flight": [[], 0.0]}
        for name in sides
    }
    streamed: dict[str, dict[int, float]] = {name: {} for name in sides}
    order = list(sides)
    chunks = [chunk for chunk in shares(calls, rounds) if chunk]
    batches = shares(nonblocking.batches(calls, asked.in_flight), len(chunks)) if asked else []
    stream_chunks = shares(asked.stream_chunks, len(chunks)) if asked else []
    for number, chunk in enumerate(chunks):
        turn = in_turn(order, number)
        for kind in ("sequential", "concurrent"):
            progress(f"round {number + 1}/{len(chunks)}: {chunk} {kind} calls on each side")
            for name in turn:
                side = sides[name]
                seconds, latencies = (
                    side.sequential(chunk)
                    if kind == "sequential"
                    else side.concurrent(chunk, threads)
                )
                spent[name][kind][0].extend(latencies)
                spent[name][kind][1] += seconds
        if asked is None:
            continue
        able = [name for name in turn if sides[name].nonblocking]
        if batches[number]:
            progress(
                f"round {number + 1}/{len(chunks)}: {batches[number]} x {asked.in_flight} "
                "calls in flight on each rpcframe side"
            )
            for name in able:
                seconds, latencies = sides[name].in_flight(batches[number], asked.in_flight)
                spent[name]["in flight"][0].extend(latencies)
                spent[name]["in flight"][1] += seconds
        if stream_chunks[number]:
            progress(
                f"round {number + 1}/{len(chunks)}: streams of {stream_chunks[number]} chunks "
                "on each rpcframe side"
            )
            for size in asked.chunk_sizes:
                for name in able:
                    seconds = sides[name].stream(stream_chunks[number], size, asked.window)
                    streamed[name][size] = streamed[name].get(size, 0.0) + seconds
    figures: dict[str, dict[str, Any]] = {}
    for name, kinds in spent.items():
        figures[name] = {
            "call_sequential": latency_figures(*kinds["sequential"]),
            "call_concurrent": {"threads": threads, **latency_figures(*kinds["concurrent"])},
        }
        if asked is None:
            continue
        if not sides[name].nonblocking:
            figures[name]["skipped"] = NO_NONBLOCKING
            continue
        figures[name]["call_async_in_flight"] = {
            "in_flight": asked.in_flight,
            **latency_figures(*kinds["in flight"]),
        }
        stream: dict[str, Any] = {
            "chunks": asked.stream_chunks,
            "streams": len([count for count in stream_chunks if count]),
            "window": asked.window,
        }
        for size, seconds in streamed[name].items():
            stream[f"per_s_{size}B"] = round(asked.stream_chunks / seconds, 1)
            stream[f"mb_per_s_{size}B"] = round(asked.stream_chunks * size / seconds / 1e6, 3)
        figures[name]["stream"] = stream
    return figures


def ratios(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The target ratios, for the sides that have figures."""
    found: dict[str, float] = {}
    for bottom, target in ((_THREADED, 0.8), (_OSLO, 2.5)):
        for workload, what in (("call_sequential", "sequential"), ("call_concurrent", "N-thread")):
            top = figures.get(_OURS, {}).get(workload, {}).get("per_s")
            under = figures.get(bottom, {}).get(workload, {}).get("per_s")
            if top and under:
                name = f"{_OURS} / {bottom}, {what} calls (target >= {target})"
                found[name] = round(top / under, 3)
    for side in (_OURS, _THREADED):
        section = figures.get(side, {})
        flight, threads = section.get("call_async_in_flight"), section.get("call_concurrent")
        if flight and threads and flight["per_s"] and threads["per_s"]:
            name = (
                f"{side}: {flight['in_flight']:,} in flight from one thread / "
                f"{threads['threads']} threads of calls (target >= 1)"
            )
            found[name] = round(flight["per_s"] / threads["per_s"], 3)
        sequential = section.get("call_sequential", {}).get("per_s")
        for key, value in section.get("stream", {}).items():
            if key.startswith("per_s_") and value and sequential:
                size = key.removeprefix("per_s_").removesuffix("B")
                name = f"{side}: stream chunks/s ({size} B) / sequential calls/s (target >= 10)"
                found[name] = round(value / sequential, 3)
    return found


def print_eventlet(report: dict[str, Any], out: TextIO) -> None:
    """The human report of ``rpcframe bench --eventlet``."""
    settings = report["settings"]
    out.write(
        f"rpcframe bench --eventlet on {report['url']} (payload {settings['payload_size']} "
        f"bytes, {settings['calls']} calls per workload and side, {settings['threads']} "
        f"threads, {settings['rounds']} interleaved rounds)\n\n"
    )
    out.write(f"  {'side':<27} {'workload':<16} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}\n")
    for name, section in report["sides"].items():
        if "error" in section:
            out.write(f"  {name:<27} not measured: {section['error']}\n")
            continue
        for workload in ("call_sequential", "call_concurrent"):
            figures = section[workload]
            label = (
                "sequential" if workload == "call_sequential" else f"{settings['threads']} threads"
            )
            out.write(
                f"  {name:<27} {label:<16} {figures['per_s']:>9.1f} "
                f"{figures['p50_ms']:>8.3f} {figures['p99_ms']:>8.3f}\n"
            )
        if "skipped" in section:
            out.write(f"  {name:<27} no calls in flight or streams: {section['skipped']}\n")
        flight = section.get("call_async_in_flight")
        if flight:
            label = f"{flight['in_flight']:,} in flight"
            out.write(
                f"  {name:<27} {label:<16} {flight['per_s']:>9.1f} "
                f"{flight['p50_ms']:>8.3f} {flight['p99_ms']:>8.3f}\n"
            )
        for key, value in section.get("stream", {}).items():
            if key.startswith("per_s_"):
                size = key.removeprefix("per_s_")
                label = f"stream {size.removesuffix('B')} B"
                megabytes = section["stream"][f"mb_per_s_{size}"]
                out.write(
                    f"  {name:<27} {label:<16} {value:>9.1f} chunks/s, {megabytes:.3f} MB/s\n"
                )
    print_ratios(report, out)


def run(
    url: str,
    calls: int,
    threads: int,
    rounds: int,
    payload_size: int,
    warmup: int,
    timeout: float,
    progress: Callable[[str], None] = lambda what: None,
    asked: NonBlocking | None = None,
) -> dict[str, Any]:
    """Start the three sides, measure them, stop them; the report (what ``--json`` writes)."""
    settings = {
        "calls": calls,
        "threads": threads,
        "rounds": rounds,
        "payload_size": payload_size,
        "warmup": warmup,
        "timeout": timeout,
        **(dataclasses.asdict(asked) if asked else {}),
    }
    report: dict[str, Any] = {
        "url": mask_url(url),
        "settings": settings,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    with contextlib.ExitStack() as stack:
        started: dict[str, Side] = {}
        errors: dict[str, dict[str, str]] = {}
        for name, library, patched in SIDES:
            progress(f"starting {name}")
            side = ProcessSide(name, library, patched, url, settings)
            try:
                started[name] = stack.enter_context(side)
            except RuntimeError as exc:
                errors[name] = {"error": str(exc)}
        figures = measure(started, calls, threads, rounds, progress, asked)
    report["sides"] = {name: figures.get(name) or errors[name] for name, _, _ in SIDES}
    report["ratios"] = ratios(figures)
    return report


class _Child:
    """A process of this module's (a side's client, or its server) speaking JSON lines.

    A context manager: entering starts it and waits for its first answer
    (it is ready); leaving closes its standard input, which ends it.
    """

    def __init__(self, name: str, role: str, patched: bool, config: dict[str, Any]) -> None:
        self.name = name
        mode = "patched" if patched else "plain"
        self._command = [sys.executable, "-c", _BOOT, mode, role, json.dumps(config)]
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Child:
        self._proc = subprocess.Popen(
            self._command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self._answer(CONTROL_TIMEOUT)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def ask(self, command: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``command``; its answer, or RuntimeError (no answer in time, or an error)."""
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        proc.stdin.write(json.dumps(command) + "\n")
        proc.stdin.flush()
        return self._answer(timeout)

    def _answer(self, timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"{self.name} said nothing in {timeout:.0f} s")
        line = proc.stdout.readline()
        if not line:
            stderr = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"{self.name} ended: {stderr.strip()[-1500:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer


class ProcessSide(_Child):
    """A side whose client runs in a process of its own (its server in another)."""

    def __init__(
        self, name: str, library: str, patched: bool, url: str, settings: dict[str, Any]
    ) -> None:
        super().__init__(name, "client", patched, {"library": library, "url": url, **settings})
        self._per_call = float(settings["timeout"])
        self.nonblocking = library == "rpcframe"

    def __enter__(self) -> ProcessSide:
        super().__enter__()
        return self

    def sequential(self, count: int) -> tuple[float, list[float]]:
        answer = self.ask({"op": "sequential", "count": count}, self._bound(count))
        return answer["seconds"], answer["latencies"]

    def concurrent(self, count: int, threads: int) -> tuple[float, list[float]]:
        command = {"op": "concurrent", "count": count, "threads": threads}
        answer = self.ask(command, self._bound(count))
        return answer["seconds"], answer["latencies"]

    def in_flight(self, batches: int, in_flight: int) -> tuple[float, list[float]]:
        command = {"op": "in_flight", "batches": batches, "in_flight": in_flight}
        answer = self.ask(command, self._bound(batches * in_flight))
        return answer["seconds"], answer["latencies"]

    def stream(self, count: int, size: int, window: int) -> float:
        command = {"op": "stream", "count": count, "size": size, "window": window}
        seconds: float = self.ask(command, self._bound(count))["seconds"]
        return seconds

    def _bound(self, calls: int) -> float:
        return CONTROL_TIMEOUT + self._per_call * calls


# -- a side's processes ----------------------------------------------------------------------


def child(role: str, config_json: str) -> None:
    """A side's client (``role`` "client") or its server ("server"); see the module docs."""
    config = json.loads(config_json)
    if role == "server":
        _serve(config)
        return
    try:
        _client(config)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        _say({"error": f"{type(exc).__name__}: {exc}"})


def _say(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def _read_line(stream: IO[str]) -> str:
    """The next line of ``stream`` ('' at its end), letting green threads run meanwhile."""
    from rpcframe import green

    if green.patched():
        green.wait_readable([stream.fileno()], None)
    return stream.readline()


def _serve(config: dict[str, Any]) -> None:
    from rpcframe import green
    from rpcframe.bench.server import serve

    class Ready:
        def set(self) -> None:
            _say({"ready": True})

    class StdinClosed:
        def wait(self) -> None:
            while _read_line(sys.stdin):
                pass

    executor = "eventlet" if green.patched() else "threading"
    serve(config["library"], config["url"], config["topic"], Ready(), StdinClosed(), executor)


def _client(config: dict[str, Any]) -> None:
    from rpcframe import green
    from rpcframe.bench.server import load_library

    library, url = config["library"], config["url"]
    topic = f"bench_green_{uuid.uuid4().hex[:10]}"
    server = _Child(f"the {library} server", "server", green.patched(), {**config, "topic": topic})
    lib, conf = load_library(library)
    try:
        with server:
            transport = lib.get_rpc_transport(conf, url)
            try:
                client = lib.get_rpc_client(
                    transport, lib.Target(topic=topic), timeout=config["timeout"]
                )
                _answer_commands(client, "x" * config["payload_size"], config)
            finally:
                transport.cleanup()
    finally:
        # Once the server is gone: it would subscribe again to a queue deleted under it.
        delete_queues(url, [topic, f"{topic}.bench-server"])


def _answer_commands(client: Any, payload: str, config: dict[str, Any]) -> None:
    """Warm up, say so, then make the calls each command on standard input asks for."""
    _calls(client, payload, config["warmup"])
    _say({"ready": True})
    while line := _read_line(sys.stdin):
        command = json.loads(line)
        if command["op"] == "sequential":
            started = time.perf_counter()
            latencies = _calls(client, payload, command["count"])
            _say({"seconds": time.perf_counter() - started, "latencies": latencies})
        elif command["op"] == "in_flight":
            seconds, latencies = nonblocking.calls_in_flight(
                client, payload, command["batches"], command["in_flight"], config["timeout"]
            )
            _say({"seconds": seconds, "latencies": [round(value, 7) for value in latencies]})
        elif command["op"] == "stream":
            count = command["count"]
            seconds = nonblocking.streamed_chunks(
                client,
                count,
                command["size"],
                command["window"],
                nonblocking.stream_timeout(config["timeout"], count),
            )
            _say({"seconds": seconds})
        else:
            count, threads = command["count"], command["threads"]
            _say(_in_threads(client, payload, count, threads, config["timeout"]))


def _calls(client: Any, payload: str, count: int) -> list[float]:
    clock, call = time.perf_counter, client.call
    latencies = []
    for _ in range(count):
        started = clock()
        call({}, "echo", value=payload)
        latencies.append(round(clock() - started, 7))
    return latencies


def _in_threads(
    client: Any, payload: str, count: int, threads: int, timeout: float
) -> dict[str, Any]:
    """``count`` calls shared by ``threads`` threads (green ones in a patched process)."""
    results: list[list[float]] = []
    errors: list[BaseException] = []

    def worker(share: int) -> None:
        try:
            results.append(_calls(client, payload, share))
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
        thread.join(timeout * count)
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {"seconds": seconds, "latencies": [value for chunk in results for value in chunk]}
