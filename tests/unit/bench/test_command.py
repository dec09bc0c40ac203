"""``rpcframe bench`` as a command: on fake:// (in process, small counts), and its usage errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from rpcframe import cli

pytestmark = pytest.mark.timeout(120)


def test_the_bench_reports_every_workload_as_json():
    out = io.StringIO()
    argv = ["bench", "--url", "fake://", "--calls", "40", "--casts", "40", "--threads", "2"]
    argv += ["--memory-calls", "2000", "--warmup", "10", "--no-progress", "--json", "-"]
    argv += ["--in-flight", "25", "--stream-chunks", "50", "--chunk-sizes", "64,1024"]
    assert cli.main(argv, out=out) == 0
    report = json.loads(out.getvalue())
    ours = report["rpcframe"]
    assert ours["server"] == "in process"
    assert ours["call_sequential"]["calls"] == 40
    assert ours["call_sequential"]["p50_ms"] <= ours["call_sequential"]["p99_ms"]
    assert ours["call_concurrent"]["threads"] == 2
    assert ours["cast_confirmed"]["casts"] == 40
    assert ours["server_memory"]["rss_after_1000_mb"] > 0
    assert (ours["call_async_in_flight"]["in_flight"], ours["call_async_in_flight"]["calls"]) == (
        25,
        50,
    )
    assert ours["stream"]["per_s_64B"] > 0 and ours["stream"]["mb_per_s_1024B"] > 0
    assert report["settings"]["payload_size"] == 100
    assert report["settings"]["chunk_sizes"] == [64, 1024]
    # Without --compare too: these ratios need no reference.
    assert sum("in flight from one thread" in name for name in report["ratios"]) == 1
    assert sum(name.startswith("stream chunks/s") for name in report["ratios"]) == 2


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
assert "rpcframe.bench.raw" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=100)


@pytest.mark.parametrize(
    "option", ["--rounds", "--calls", "--casts", "--threads", "--in-flight", "--stream-chunks"]
)
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


def test_the_asyncio_bench_needs_a_rabbit_url(capsys):
    assert cli.main(["bench", "--url", "fake://", "--asyncio"], io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "--asyncio measures RabbitMQ: give a rabbit:// URL" in error


def test_the_asyncio_bench_on_zmq_needs_servers_other_processes_can_find(capsys):
    assert cli.main(["bench", "--url", "zmq://", "--asyncio"], io.StringIO()) == 2
    error = capsys.readouterr().err
    assert "give a zmq+redis:// URL (or a zmq:// one naming the servers' host:port)" in error


def test_the_asyncio_report_on_zmq_gives_the_raw_pyzmq_ratio_without_rabbitmq_targets():
    from rpcframe.bench import aio

    report = {
        "settings": {"calls": 10, "rounds": 1, "in_flight": 5, "threads": 2},
        "calls_per_second": {"aio_sequential": 500.0, "raw_zmq_sequential": 2000.0},
        "rounds": {"aio_sequential": [500.0], "raw_zmq_sequential": [2000.0]},
        "ratios": {
            "aio_sequential / raw_zmq_sequential": 0.25,
            "aio_5_in_flight / threaded_2_threads": 0.9,
        },
    }
    out = io.StringIO()
    aio.print_report(report, out)
    text = out.getvalue()
    assert "0.250  aio_sequential / raw_zmq_sequential\n" in text
    assert "0.900  aio_5_in_flight / threaded_2_threads\n" in text
    assert "target" not in text


def test_the_asyncio_report_prints_each_figure_and_the_targets():
    from rpcframe.bench import aio

    report = {
        "settings": {"calls": 10, "rounds": 2, "in_flight": 5, "threads": 2},
        "calls_per_second": {"aio_sequential": 500.0, "raw_sequential": 1000.0},
        "rounds": {"aio_sequential": [490.0, 510.0], "raw_sequential": [990.0, 1010.0]},
        "ratios": {
            "aio_sequential / raw_aiormq_sequential": 0.5,
            "aio_5_in_flight / threaded_2_threads": 1.7,
        },
    }
    out = io.StringIO()
    aio.print_report(report, out)
    text = out.getvalue()
    assert "aio_sequential" in text and "(490, 510)" in text
    assert "0.500  aio_sequential / raw_aiormq_sequential (target >= 1)" in text
    assert "1.700  aio_5_in_flight / threaded_2_threads (target >= 1.5)" in text


def test_queues_are_deleted_only_on_rabbitmq(monkeypatch):
    # An AMQP connection to a zmq+redis:// URL would talk AMQP to Redis and hang.
    import amqp

    from rpcframe.bench import server

    def refuse(*args, **kwargs):
        raise AssertionError("connected over AMQP for a transport that is not RabbitMQ")

    monkeypatch.setattr(amqp, "Connection", refuse)
    server.delete_queues("zmq+redis://127.0.0.1:6379/", ["q"])
    server.delete_queues("fake://", ["q"])
