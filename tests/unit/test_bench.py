"""``rpcframe bench`` on fake:// (in process, small counts) and its ratios."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys

import pytest

from rpcframe import bench, bench_server, cli

pytestmark = pytest.mark.timeout(120)


def test_the_bench_reports_every_workload_as_json():
    out = io.StringIO()
    argv = ["bench", "--url", "fake://", "--calls", "40", "--casts", "40", "--threads", "2"]
    argv += ["--memory-calls", "2000", "--warmup", "10", "--no-progress", "--json", "-"]
    assert cli.main(argv, out=out) == 0
    report = json.loads(out.getvalue())
    ours = report["rpcframe"]
    assert ours["server"] == "in process"
    assert ours["call_sequential"]["calls"] == 40
    assert ours["call_sequential"]["p50_ms"] <= ours["call_sequential"]["p99_ms"]
    assert ours["call_concurrent"]["threads"] == 2
    assert ours["cast_confirmed"]["casts"] == 40
    assert ours["server_memory"]["rss_after_1000_mb"] > 0
    assert report["settings"]["payload_size"] == 100


def test_ratios_divide_the_figures_the_targets_name():
    report = {
        "rpcframe": {
            "call_sequential": {"per_s": 900.0},
            "call_concurrent": {"per_s": 3000.0},
            "cast_confirmed": {"per_s": 4000.0},
            "server_memory": {"ratio": 1.02},
        },
        "oslo.messaging": {"call_concurrent": {"per_s": 1000.0}},
        "raw": {"round_trip": {"per_s": 1000.0}, "confirmed_publish": {"per_s": 5000.0}},
    }
    found = bench.ratios(report)
    assert found["call_sequential / raw round trip (target >= 0.85)"] == 0.9
    assert found["call_concurrent / oslo.messaging call_concurrent (target >= 3)"] == 3.0
    assert found["cast_confirmed / raw confirmed publish (target >= 0.8)"] == 0.8
    assert found["server memory growth (target <= 1.1)"] == 1.02


def test_workloads_are_a_registry_others_can_extend():
    names = [workload.name for workload in bench.WORKLOADS]
    assert names == [
        "call_sequential",
        "call_concurrent",
        "cast_confirmed",
        "notifications",
        "server_memory",
    ]
    assert all(isinstance(workload, bench.Workload) for workload in bench.WORKLOADS)


class RecordedReference:
    """Stands in for the raw py-amqp references; logs each chunk it is asked to measure."""

    def __init__(self, log: list[tuple[str, int]]) -> None:
        self.log = log

    def round_trips(self, count: int) -> list[float]:
        self.log.append(("raw round trips", count))
        return [(i + 1) / 1000 for i in range(count)]

    def protocol_round_trips(self, count: int) -> list[float]:
        self.log.append(("raw protocol round trips", count))
        return [2 * (i + 1) / 1000 for i in range(count)]

    def confirmed_publishes(self, count: int) -> float:
        self.log.append(("raw publishes", count))
        return count / 5000

    def protocol_confirmed_casts(self, count: int) -> float:
        self.log.append(("raw protocol casts", count))
        return count / 2500


@pytest.fixture
def chunk_log(monkeypatch):
    """What ran, in order: rpcframe's chunks of calls and of casts, and the reference's."""
    log: list[tuple[str, int]] = []
    timed_calls = bench.Bench.timed_calls

    def logged_calls(self, count, advance):
        log.append(("calls", count))
        return timed_calls(self, count, advance)

    def logged_casts_received(self, ctxt, expected, timeout):
        received = casts_received(self, ctxt, expected, timeout)
        log.append(("casts received", received))
        return received

    casts_received = bench_server.BenchEndpoint.casts_received
    monkeypatch.setattr(bench.Bench, "timed_calls", logged_calls)
    monkeypatch.setattr(bench_server.BenchEndpoint, "casts_received", logged_casts_received)
    return log


SETTINGS = bench.BenchSettings(url="fake://", calls=10, casts=10, warmup=5, progress=False)
CALLS_AND_CASTS = [bench.SequentialCalls(), bench.ConfirmedCasts()]


def test_the_raw_references_alternate_with_rpcframe_chunk_by_chunk(chunk_log):
    settings = dataclasses.replace(SETTINGS, rounds=3)
    reference = RecordedReference(chunk_log)
    bench.measure_rpcframe(settings, io.StringIO(), reference, CALLS_AND_CASTS)
    assert chunk_log == [
        ("calls", 5),  # the warm-up
        ("calls", 4),
        ("raw round trips", 4),
        ("raw protocol round trips", 4),
        ("raw protocol round trips", 3),
        ("raw round trips", 3),
        ("calls", 3),
        ("calls", 3),
        ("raw round trips", 3),
        ("raw protocol round trips", 3),
        ("casts received", 4),
        ("raw publishes", 4),
        ("raw protocol casts", 4),
        ("raw protocol casts", 3),
        ("raw publishes", 3),
        ("casts received", 3),
        ("casts received", 3),
        ("raw publishes", 3),
        ("raw protocol casts", 3),
    ]


def test_interleaved_figures_cover_every_chunk_and_land_in_the_raw_section(chunk_log):
    settings = dataclasses.replace(SETTINGS, rounds=3)
    sections = bench.measure_rpcframe(
        settings, io.StringIO(), RecordedReference(chunk_log), CALLS_AND_CASTS
    )
    ours = sections["rpcframe"]
    assert ours["call_sequential"]["calls"] == 10
    assert ours["call_sequential"]["p50_ms"] <= ours["call_sequential"]["p99_ms"]
    assert ours["cast_confirmed"]["casts"] == 10
    assert ours["cast_confirmed"]["per_s"] <= ours["cast_confirmed"]["send_per_s"]
    round_trip = sections["raw"]["round_trip"]
    # Chunks of 4, 3 and 3 round trips taking 1, 2, 3 (, 4) ms each.
    assert (round_trip["calls"], round_trip["interleaved_rounds"]) == (10, 3)
    assert (round_trip["p50_ms"], round_trip["p99_ms"], round_trip["mean_ms"]) == (2, 4, 2.2)
    assert round_trip["per_s"] > 0
    protocol = sections["raw"]["round_trip_oslo_protocol"]
    assert (protocol["calls"], protocol["interleaved_rounds"]) == (10, 3)
    assert (protocol["p50_ms"], protocol["p99_ms"], protocol["mean_ms"]) == (4, 8, 4.4)
    # 0.2 ms a publish, summed over the chunks.
    assert sections["raw"]["confirmed_publish"] == {
        "publishes": 10,
        "per_s": 5000.0,
        "interleaved_rounds": 3,
    }
    assert sections["raw"]["confirmed_cast_oslo_protocol"] == {
        "casts": 10,
        "per_s": 2500.0,
        "interleaved_rounds": 3,
    }
    report = {"url": "fake://", "settings": dataclasses.asdict(settings), **sections}
    assert "call_sequential / raw round trip (target >= 0.85)" in bench.ratios(report)
    assert "cast_confirmed / raw confirmed publish (target >= 0.8)" in bench.ratios(report)
    assert bench.ratios(report)["raw round trip doing oslo's protocol work / raw round trip"] == (
        round(protocol["per_s"] / round_trip["per_s"], 3)
    )


def test_without_a_reference_rpcframe_runs_in_the_same_chunks(chunk_log):
    # So that its figures mean the same with and without --compare.
    settings = dataclasses.replace(SETTINGS, rounds=3)
    sections = bench.measure_rpcframe(settings, io.StringIO(), workloads=CALLS_AND_CASTS)
    assert list(sections) == ["rpcframe"]
    assert chunk_log == [
        ("calls", 5),  # the warm-up
        ("calls", 4),
        ("calls", 3),
        ("calls", 3),
        ("casts received", 4),
        ("casts received", 3),
        ("casts received", 3),
    ]
    assert sections["rpcframe"]["call_sequential"]["calls"] == 10
    assert sections["rpcframe"]["cast_confirmed"]["casts"] == 10


def test_the_fake_transport_bench_needs_no_amqp():
    script = """
import io, sys
sys.modules["amqp"] = None  # any import of it fails
from rpcframe import bench
settings = bench.BenchSettings(
    url="fake://", calls=10, casts=10, warmup=5, memory_calls=2000, threads=2, progress=False
)
report = bench.run(settings, out=io.StringIO())
assert "raw" not in report and report["settings"]["rounds"] == 5, report
assert "rpcframe.bench_raw" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=100)


@pytest.mark.parametrize("option", ["--rounds", "--calls", "--casts", "--threads"])
def test_a_count_below_one_is_a_clear_usage_error(option, capsys):
    with pytest.raises(SystemExit) as stopped:
        cli.main(["bench", option, "0"], io.StringIO())
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert option in error and "must be at least 1, got 0" in error


def test_protocol_costs_need_a_rabbit_url(capsys):
    assert cli.main(["bench", "--url", "fake://", "--protocol-costs"], io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "--protocol-costs measures RabbitMQ: give a rabbit:// URL" in error


def test_protocol_costs_print_each_row_against_the_first_of_its_kind():
    from rpcframe import bench_costs

    def row(per_s, **cpu):
        return {"per_s": per_s, **cpu}

    report = {
        "url_host": "127.0.0.1:5672",
        "rounds": 3,
        "figures": {
            "calls: bare round trip": row(
                2000.0, client_us=100.0, server_us=120.0, broker_us=200.0
            ),
            "calls: rpcframe": row(1700.0, client_us=110.0, server_us=130.0),
            "casts: bare confirmed publish": row(5000.0, client_us=80.0, broker_us=95.0),
            "casts: rpcframe": row(4000.0, client_us=90.0, broker_us=150.0),
        },
    }
    out = io.StringIO()
    bench_costs.print_costs(report, out)
    lines = out.getvalue().splitlines()
    assert "medians of 3 rounds" in lines[0]
    first_words = [line.split()[0] for line in lines[1:]]
    assert first_words == ["calls:", "bare", "rpcframe", "casts:", "bare", "rpcframe"]
    calls_rpcframe, casts_rpcframe = lines[3], lines[6]
    assert calls_rpcframe.split() == ["rpcframe", "1700", "0.850", "110", "130", "-"]
    assert casts_rpcframe.split() == ["rpcframe", "4000", "0.800", "90", "-", "150"]
