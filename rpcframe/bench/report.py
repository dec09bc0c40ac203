"""The report of ``rpcframe bench``: the target ratios, the printout and the plot.

Works on the report dict alone (what ``--json`` writes), so a saved report
can be printed or plotted again.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["latency_figures", "percentile", "plot", "print_ratios", "print_report", "ratios"]


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the way through ``sorted_values``."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def latency_figures(latencies: Sequence[float], seconds: float) -> dict[str, Any]:
    """The figures of calls that took ``latencies`` (seconds each), ``seconds`` in all."""
    ordered = sorted(latencies)
    return {
        "calls": len(ordered),
        "per_s": round(len(ordered) / seconds, 1) if seconds else 0.0,
        "p50_ms": round(percentile(ordered, 0.50) * 1e3, 3),
        "p99_ms": round(percentile(ordered, 0.99) * 1e3, 3),
        "mean_ms": round(statistics.fmean(ordered) * 1e3, 3),
    }


#: ``report["reference"]`` when the ``raw`` section holds rpcframe.bench.bare's figures.
IN_PROCESS = "bare in-process"
#: ``report["reference"]`` when the ``raw`` section holds rpcframe.bench.rawzmq's figures.
RAW_ZMQ = "raw pyzmq"

#: The references other than RabbitMQ's, and what their three ratios are called:
#: the round trip, the round trip in oslo's envelope, the cast.
_REFERENCE_LABELS = {
    IN_PROCESS: (
        "bare in-process round trip (target >= 0.7)",
        "bare in-process round trip in oslo's envelope",
        "bare in-process cast",
    ),
    RAW_ZMQ: (
        "raw pyzmq REQ/REP round trip (target >= 0.6)",
        "raw pyzmq round trip in oslo's envelope",
        "raw pyzmq acknowledged cast",
    ),
}


def ratios(report: dict[str, Any]) -> dict[str, float]:
    """The project's target ratios, for what the report has figures for."""
    ours = report.get("rpcframe", {})
    oslo = report.get("oslo.messaging", {})
    raw = report.get("raw", {})
    found: dict[str, float] = {}

    def figure(section: dict[str, Any], workload: str, key: str = "per_s") -> float | None:
        value = section.get(workload, {}).get(key) if isinstance(section, dict) else None
        return float(value) if value else None

    labels = _REFERENCE_LABELS.get(str(report.get("reference")))
    if labels is not None:
        # The references are not RabbitMQ's: bare threads in this process
        # (rpcframe.bench.bare) or a bare pyzmq service (rpcframe.bench.rawzmq).
        round_trip, enveloped, cast = labels
        found |= _divided(
            {
                f"call_sequential / {round_trip}": (
                    figure(ours, "call_sequential"),
                    figure(raw, "round_trip"),
                ),
                f"call_sequential / {enveloped}": (
                    figure(ours, "call_sequential"),
                    figure(raw, "round_trip_oslo_protocol"),
                ),
                f"cast_confirmed / {cast}": (
                    figure(ours, "cast_confirmed"),
                    figure(raw, "confirmed_publish"),
                ),
            }
        )
        raw = {}
    pairs = {
        "call_sequential / raw round trip (target >= 0.85)": (
            figure(ours, "call_sequential"),
            figure(raw, "round_trip"),
        ),
        "call_sequential / raw round trip doing oslo's protocol work": (
            figure(ours, "call_sequential"),
            figure(raw, "round_trip_oslo_protocol"),
        ),
        "raw round trip doing oslo's protocol work / raw round trip": (
            figure(raw, "round_trip_oslo_protocol"),
            figure(raw, "round_trip"),
        ),
        "call_concurrent / oslo.messaging call_concurrent (target >= 3)": (
            figure(ours, "call_concurrent"),
            figure(oslo, "call_concurrent"),
        ),
        "cast_confirmed / raw confirmed publish (target >= 0.8)": (
            figure(ours, "cast_confirmed"),
            figure(raw, "confirmed_publish"),
        ),
        "cast_confirmed / raw confirmed cast doing oslo's protocol work": (
            figure(ours, "cast_confirmed"),
            figure(raw, "confirmed_cast_oslo_protocol"),
        ),
        "raw confirmed cast doing oslo's protocol work / raw confirmed publish": (
            figure(raw, "confirmed_cast_oslo_protocol"),
            figure(raw, "confirmed_publish"),
        ),
        "call_sequential / oslo.messaging call_sequential": (
            figure(ours, "call_sequential"),
            figure(oslo, "call_sequential"),
        ),
        "cast_confirmed / oslo.messaging cast_confirmed": (
            figure(ours, "cast_confirmed"),
            figure(oslo, "cast_confirmed"),
        ),
    }
    found |= _divided(pairs)
    if isinstance(ours, dict):
        found |= _nonblocking_ratios(ours)
    memory = ours.get("server_memory", {}) if isinstance(ours, dict) else {}
    if "ratio" in memory:
        found["server memory growth (target <= 1.1)"] = memory["ratio"]
    return found


def _nonblocking_ratios(ours: dict[str, Any]) -> dict[str, float]:
    """Calls in flight ÷ N threads of calls, and stream chunks ÷ sequential calls, per second.

    Each divides by the blocking calls its workload measured in the same rounds.
    """
    flight = ours.get("call_async_in_flight") or {}
    streams = ours.get("stream") or {}
    pairs: dict[str, tuple[float | None, float | None]] = {}
    if flight:
        name = (
            f"call_async, {flight['in_flight']:,} in flight from one thread / "
            f"{flight['threads']} threads of sequential calls (target >= 1)"
        )
        pairs[name] = (flight.get("per_s"), flight.get("threads_per_s"))
    sequential = streams.get("sequential_per_s")
    for key, value in streams.items():
        if key.startswith("per_s_"):
            size = key.removeprefix("per_s_").removesuffix("B")
            pairs[f"stream chunks/s ({size} B chunks) / sequential calls/s (target >= 10)"] = (
                value,
                sequential,
            )
    return _divided(pairs)


def _divided(pairs: dict[str, tuple[float | None, float | None]]) -> dict[str, float]:
    """Each pair's ratio, where both figures are there."""
    return {name: round(top / bottom, 3) for name, (top, bottom) in pairs.items() if top and bottom}


def print_report(report: dict[str, Any], out: TextIO) -> None:
    """The human report of ``rpcframe bench``: settings, each section's figures, the ratios."""
    settings = report["settings"]
    out.write(
        f"rpcframe bench on {report['url']} (payload {settings['payload_size']} bytes, "
        f"{settings['calls']} calls, {settings['casts']} casts, warm-up "
        f"{settings['warmup']} calls)\n"
    )
    for system in ("rpcframe", "oslo.messaging"):
        section = report.get(system)
        if not section:
            continue
        if "error" in section:
            out.write(f"\n{system}: not measured ({section['error']})\n")
            continue
        out.write(f"\n{system} (server {section.get('server', '?')}):\n")
        _write_figures(section, 20, out)
        _write_nonblocking(section, out)
    raw = report.get("raw")
    if raw:
        if report.get("reference") == IN_PROCESS:
            out.write("\nbare in-process reference (two threads, SimpleQueue, JSON each way):\n")
        elif report.get("reference") == RAW_ZMQ:
            out.write("\nraw pyzmq (REQ/REP and DEALER/ROUTER on the loopback, JSON each way):\n")
        else:
            out.write("\nraw py-amqp (no framework):\n")
        _write_figures(raw, 28, out)
    print_ratios(report, out)


def print_ratios(report: dict[str, Any], out: TextIO) -> None:
    """The report's ``ratios`` section, one line each, if it has any."""
    found = report.get("ratios") or {}
    if found:
        out.write("\nratios:\n")
        for name, value in found.items():
            out.write(f"  {value:>7.3f}  {name}\n")


def _write_nonblocking(section: dict[str, Any], out: TextIO) -> None:
    """Calls in flight and streams, beside the blocking calls measured in the same rounds."""
    flight = section.get("call_async_in_flight")
    streams: dict[str, Any] = section.get("stream") or {}
    if not (flight or streams):
        return
    out.write("  calls that do not block, beside blocking calls measured in the same rounds:\n")
    if flight:
        out.write(
            f"    {flight['in_flight']:,} in flight from one thread: {flight['per_s']:,.1f} "
            f"calls/s, p99 {flight['p99_ms']:,.1f} ms; {flight['threads']} threads of "
            f"sequential calls: {flight['threads_per_s']:,.1f} calls/s\n"
        )
    for key, value in streams.items():
        if key.startswith("per_s_"):
            size = key.removeprefix("per_s_")
            megabytes = streams[f"mb_per_s_{size}"]
            out.write(
                f"    stream of {size.removesuffix('B')} B chunks (window {streams['window']}): "
                f"{value:,.1f} chunks/s, {megabytes:,.3f} MB/s; sequential calls: "
                f"{streams['sequential_per_s']:,.1f} calls/s\n"
            )


def _write_figures(section: dict[str, Any], width: int, out: TextIO) -> None:
    """One line per workload of ``section``, in the order they were measured."""
    for name, figures in section.items():
        if isinstance(figures, dict):
            shown = ", ".join(f"{key} {value}" for key, value in figures.items())
            out.write(f"  {name:<{width}} {shown}\n")


def plot(report: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in ("rpcframe", "oslo.messaging") if "error" not in report.get(s, {"e": 1})]
    workloads = ["call_sequential", "call_concurrent", "cast_confirmed"]
    figure, (rates, latency) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(1, len(systems) + 1)
    for i, system in enumerate(systems):
        values = [report[system].get(w, {}).get("per_s", 0) for w in workloads]
        rates.bar([x + i * width for x in range(len(workloads))], values, width, label=system)
    raw = report.get("raw", {})
    if raw:
        values = [
            raw.get("round_trip", {}).get("per_s", 0),
            0,
            raw.get("confirmed_publish", {}).get("per_s", 0),
        ]
        offset = len(systems) * width
        rates.bar([x + offset for x in range(len(workloads))], values, width, label="raw py-amqp")
    rates.set_xticks([x + width * len(systems) / 2 for x in range(len(workloads))], workloads)
    rates.set_ylabel("messages per second")
    rates.legend()
    for system in systems:
        figures = report[system].get("call_sequential", {})
        latency.bar(
            [f"{system}\np50", f"{system}\np99"],
            [figures.get("p50_ms", 0), figures.get("p99_ms", 0)],
        )
    latency.set_ylabel("sequential call latency (ms)")
    figure.suptitle(
        f"rpcframe bench, {report['url']}, payload {report['settings']['payload_size']} B"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
