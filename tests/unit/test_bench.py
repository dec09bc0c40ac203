"""``rpcframe bench`` on fake:// (in process, small counts) and its ratios."""

from __future__ import annotations

import io
import json

import pytest

from rpcframe import bench, cli

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
