"""``rpcframe bench --eventlet``: its arguments, its rounds, its figures and its report."""

from __future__ import annotations

import io
import json

import pytest

from rpcframe import cli
from rpcframe.bench import patched

pytestmark = pytest.mark.timeout(60)

OURS, THREADED, OSLO = (name for name, _, _ in patched.SIDES)


class RecordedSide:
    """Stands in for a side's process: each call takes ``latency`` seconds; logs each chunk.

    Calls in flight take a tenth of that each, a streamed chunk a hundredth.
    """

    def __init__(self, name: str, latency: float, log: list[tuple[str, str, int]]) -> None:
        self.name = name
        self.latency = latency
        self.log = log
        self.nonblocking = name != OSLO

    def sequential(self, count: int) -> tuple[float, list[float]]:
        self.log.append((self.name, "sequential", count))
        return count * self.latency, [self.latency] * count

    def concurrent(self, count: int, threads: int) -> tuple[float, list[float]]:
        self.log.append((self.name, f"{threads} threads", count))
        return count * self.latency / threads, [self.latency] * count

    def in_flight(self, batches: int, in_flight: int) -> tuple[float, list[float]]:
        assert self.nonblocking
        self.log.append((self.name, f"{batches} x {in_flight} in flight", batches * in_flight))
        count = batches * in_flight
        return count * self.latency / 10, [self.latency * 5] * count

    def stream(self, count: int, size: int, window: int) -> float:
        assert self.nonblocking
        self.log.append((self.name, f"stream {size} B", count))
        return count * self.latency / 100


def _sides(log: list[tuple[str, str, int]]) -> dict[str, RecordedSide]:
    return {
        OURS: RecordedSide(OURS, 0.001, log),
        THREADED: RecordedSide(THREADED, 0.0009, log),
        OSLO: RecordedSide(OSLO, 0.004, log),
    }


def test_the_sides_take_turns_in_every_round_first_in_one_order_then_in_the_other():
    log: list[tuple[str, str, int]] = []
    patched.measure(_sides(log), calls=5, threads=2, rounds=2)
    assert log == [
        (OURS, "sequential", 3),
        (THREADED, "sequential", 3),
        (OSLO, "sequential", 3),
        (OURS, "2 threads", 3),
        (THREADED, "2 threads", 3),
        (OSLO, "2 threads", 3),
        (OSLO, "sequential", 2),
        (THREADED, "sequential", 2),
        (OURS, "sequential", 2),
        (OSLO, "2 threads", 2),
        (THREADED, "2 threads", 2),
        (OURS, "2 threads", 2),
    ]


def test_figures_cover_every_chunk_and_the_ratios_are_the_targets():
    figures = patched.measure(_sides([]), calls=10, threads=2, rounds=3)
    sequential = figures[OURS]["call_sequential"]
    assert sequential == {
        "calls": 10,
        "per_s": 1000.0,
        "p50_ms": 1.0,
        "p99_ms": 1.0,
        "mean_ms": 1.0,
    }
    assert figures[OURS]["call_concurrent"]["per_s"] == 2000.0
    assert figures[OURS]["call_concurrent"]["threads"] == 2
    found = patched.ratios(figures)
    assert found == {
        f"{OURS} / {THREADED}, sequential calls (target >= 0.8)": 0.9,
        f"{OURS} / {THREADED}, N-thread calls (target >= 0.8)": 0.9,
        f"{OURS} / {OSLO}, sequential calls (target >= 2.5)": 4.0,
        f"{OURS} / {OSLO}, N-thread calls (target >= 2.5)": 4.0,
    }


def test_a_side_that_could_not_be_measured_has_no_ratio_and_says_why():
    figures = patched.measure(
        {name: side for name, side in _sides([]).items() if name != OSLO}, 4, 2, 1
    )
    assert set(patched.ratios(figures)) == {
        f"{OURS} / {THREADED}, sequential calls (target >= 0.8)",
        f"{OURS} / {THREADED}, N-thread calls (target >= 0.8)",
    }
    report = _report(figures | {OSLO: {"error": "oslo.messaging is not installed"}})
    out = io.StringIO()
    patched.print_eventlet(report, out)
    assert f"{OSLO:<27} not measured: oslo.messaging is not installed" in out.getvalue()


def _report(sides: dict, calls: int = 4, threads: int = 2, rounds: int = 1) -> dict:
    settings = {"calls": calls, "threads": threads, "rounds": rounds, "payload_size": 100}
    figures = {name: section for name, section in sides.items() if "error" not in section}
    return {
        "url": "rabbit://guest:****@127.0.0.1:5672/",
        "settings": settings,
        "sides": sides,
        "ratios": patched.ratios(figures),
    }


def test_the_report_has_a_line_per_side_and_workload_and_the_ratios():
    report = _report(patched.measure(_sides([]), 10, 2, 2), calls=10, rounds=2)
    out = io.StringIO()
    patched.print_eventlet(report, out)
    lines = out.getvalue().splitlines()
    assert "2 interleaved rounds" in lines[0]
    rows = [line.split() for line in lines if line.startswith("  ") and "ms" not in line]
    assert rows[0][:4] == ["rpcframe", "(eventlet)", "sequential", "1000.0"]
    assert rows[1][:5] == ["rpcframe", "(eventlet)", "2", "threads", "2000.0"]
    ratio = "0.900  rpcframe (eventlet) / rpcframe (threads), sequential calls"
    assert any(line.strip().startswith(ratio) for line in lines)


def test_eventlet_bench_needs_a_rabbit_url(capsys):
    assert cli.main(["bench", "--url", "fake://", "--eventlet"], io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "--eventlet measures RabbitMQ: give a rabbit:// URL" in error


def test_the_options_reach_the_eventlet_bench_and_json_goes_to_stdout(monkeypatch):
    asked = {}

    def run(url, calls, threads, rounds, payload_size, warmup, timeout, progress, nonblocking):
        asked.update(url=url, calls=calls, threads=threads, rounds=rounds, warmup=warmup)
        asked.update(nonblocking=nonblocking)
        figures = patched.measure(_sides([]), calls, threads, rounds)
        return _report(figures, calls, threads, rounds)

    monkeypatch.setattr(patched, "run", run)
    out = io.StringIO()
    argv = ["bench", "--eventlet", "--url", "rabbit://guest:guest@127.0.0.1:5672/"]
    argv += ["--calls", "40", "--threads", "4", "--rounds", "2", "--warmup", "7", "--json", "-"]
    argv += ["--in-flight", "20", "--stream-chunks", "60", "--chunk-sizes", "100", "--window", "8"]
    assert cli.main(argv, out) == 0
    assert asked == {
        "url": "rabbit://guest:guest@127.0.0.1:5672/",
        "calls": 40,
        "threads": 4,
        "rounds": 2,
        "warmup": 7,
        "nonblocking": patched.NonBlocking(20, 60, (100,), 8),
    }
    report = json.loads(out.getvalue())
    assert report["sides"][OURS]["call_concurrent"]["threads"] == 4
    assert len(report["ratios"]) == 4


ASKED = patched.NonBlocking(in_flight=4, stream_chunks=6, chunk_sizes=(64, 4096), window=8)


def test_the_rpcframe_sides_also_take_turns_with_calls_in_flight_and_streams():
    log: list[tuple[str, str, int]] = []
    patched.measure(_sides(log), calls=5, threads=2, rounds=2, asked=ASKED)
    # 5 calls, 4 in flight: 2 batches, one a round; 6 chunks a size: 3 a round.
    assert [entry for entry in log if "threads" not in entry[1] and entry[1] != "sequential"] == [
        (OURS, "1 x 4 in flight", 4),
        (THREADED, "1 x 4 in flight", 4),
        (OURS, "stream 64 B", 3),
        (THREADED, "stream 64 B", 3),
        (OURS, "stream 4096 B", 3),
        (THREADED, "stream 4096 B", 3),
        (THREADED, "1 x 4 in flight", 4),
        (OURS, "1 x 4 in flight", 4),
        (THREADED, "stream 64 B", 3),
        (OURS, "stream 64 B", 3),
        (THREADED, "stream 4096 B", 3),
        (OURS, "stream 4096 B", 3),
    ]


def test_calls_in_flight_and_streams_have_figures_and_ratios_and_oslo_says_why_it_has_none():
    figures = patched.measure(_sides([]), calls=10, threads=2, rounds=2, asked=ASKED)
    flight = figures[OURS]["call_async_in_flight"]
    # 3 batches of 4 calls, 0.1 ms each; every latency 5 ms.
    assert (flight["in_flight"], flight["calls"], flight["per_s"]) == (4, 12, 10000.0)
    assert flight["p99_ms"] == 5.0
    stream = figures[OURS]["stream"]
    assert (stream["chunks"], stream["streams"], stream["window"]) == (6, 2, 8)
    assert (stream["per_s_64B"], stream["mb_per_s_4096B"]) == (100000.0, 409.6)
    assert figures[OSLO]["skipped"] == patched.NO_NONBLOCKING
    assert "stream" not in figures[OSLO]
    found = patched.ratios(figures)
    in_flight = f"{OURS}: 4 in flight from one thread / 2 threads of calls (target >= 1)"
    assert found[in_flight] == pytest.approx(5.0, abs=0.002)
    streams = f"{OURS}: stream chunks/s (64 B) / sequential calls/s (target >= 10)"
    assert found[streams] == pytest.approx(100.0, abs=0.002)
    threaded = f"{THREADED}: stream chunks/s (4096 B) / sequential calls/s (target >= 10)"
    assert found[threaded] == pytest.approx(100.0, abs=0.002)
    out = io.StringIO()
    patched.print_eventlet(_report(figures, calls=10, rounds=2), out)
    text = out.getvalue()
    assert f"{OSLO:<27} no calls in flight or streams: {patched.NO_NONBLOCKING}" in text
    assert f"{OURS:<27} {'4 in flight':<16} {10000.0:>9.1f}" in text
    assert f"{OURS:<27} {'stream 4096 B':<16} {100000.0:>9.1f} chunks/s, 409.600 MB/s" in text
