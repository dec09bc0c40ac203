"""A suite of workloads run against a bench server, on rpcframe or oslo.messaging.

:func:`run_suite` starts the bench server (:mod:`rpcframe.bench.server`),
warms up and runs the workloads (:mod:`rpcframe.bench.workloads`) with one
client of the library named. :func:`measure_rpcframe` gives the report's
``rpcframe`` section (and its ``raw`` one, when the raw py-amqp references
are interleaved); :func:`measure_oslo` its ``oslo.messaging`` section, from a
process of its own.
"""

from __future__ import annotations

import multiprocessing
import sys
import uuid
from collections.abc import Sequence
from typing import Any, TextIO

from rpcframe.bench.server import ServerProcess, ServerThread, delete_queues, load_library
from rpcframe.bench.workloads import (
    WORKLOADS,
    Bench,
    BenchSettings,
    RawMeasure,
    Reference,
    Workload,
)

__all__ = ["measure_oslo", "measure_rpcframe", "run_suite"]


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


def measure_oslo(settings: BenchSettings) -> dict[str, Any]:
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
    calls and confirmed casts (see
    :meth:`rpcframe.bench.workloads.Bench.alternate`).
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
