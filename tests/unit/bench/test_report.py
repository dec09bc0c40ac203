"""The report of ``rpcframe bench``: the target ratios and the printout."""

from __future__ import annotations

import io

from rpcframe.bench import report
from rpcframe.bench import report as report_module


def test_ratios_divide_the_figures_the_targets_name():
    whole = {
        "rpcframe": {
            "call_sequential": {"per_s": 900.0},
            "call_concurrent": {"per_s": 3000.0},
            "cast_confirmed": {"per_s": 4000.0},
            "server_memory": {"ratio": 1.02},
        },
        "oslo.messaging": {"call_concurrent": {"per_s": 1000.0}},
        "raw": {"round_trip": {"per_s": 1000.0}, "confirmed_publish": {"per_s": 5000.0}},
    }
    found = report.ratios(whole)
    assert found["call_sequential / raw round trip (target >= 0.85)"] == 0.9
    assert found["call_concurrent / oslo.messaging call_concurrent (target >= 3)"] == 3.0
    assert found["cast_confirmed / raw confirmed publish (target >= 0.8)"] == 0.8
    assert found["server memory growth (target <= 1.1)"] == 1.02


def test_protocol_costs_print_each_row_against_the_first_of_its_kind():
    from rpcframe.bench import costs  # needs py-amqp

    def row(per_s, **cpu):
        return {"per_s": per_s, **cpu}

    measured = {
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
    costs.print_costs(measured, out)
    lines = out.getvalue().splitlines()
    assert "medians of 3 rounds" in lines[0]
    first_words = [line.split()[0] for line in lines[1:]]
    assert first_words == ["calls:", "bare", "rpcframe", "casts:", "bare", "rpcframe"]
    calls_rpcframe, casts_rpcframe = lines[3], lines[6]
    assert calls_rpcframe.split() == ["rpcframe", "1700", "0.850", "110", "130", "-"]
    assert casts_rpcframe.split() == ["rpcframe", "4000", "0.800", "90", "-", "150"]


def test_on_fake_the_ratios_are_to_the_bare_in_process_reference():
    report = {
        "reference": report_module.IN_PROCESS,
        "rpcframe": {"call_sequential": {"per_s": 7000.0}, "cast_confirmed": {"per_s": 30000.0}},
        "raw": {
            "round_trip": {"per_s": 10000.0},
            "round_trip_oslo_protocol": {"per_s": 14000.0},
            "confirmed_publish": {"per_s": 60000.0},
        },
    }
    found = report_module.ratios(report)
    assert found == {
        "call_sequential / bare in-process round trip (target >= 0.7)": 0.7,
        "call_sequential / bare in-process round trip in oslo's envelope": 0.5,
        "cast_confirmed / bare in-process cast": 0.5,
    }


def test_the_bare_reference_answers_calls_and_takes_casts():
    from rpcframe.bench.bare import BareInProcess

    with BareInProcess(payload_size=10, warmup=5) as bare:
        assert len(bare.round_trips(20)) == 20
        assert len(bare.protocol_round_trips(20)) == 20
        assert bare.confirmed_publishes(50) > 0
        assert bare.protocol_confirmed_casts(50) > 0


NONBLOCKING_FIGURES = {
    # The figures of the other workloads are not what the ratios divide by.
    "call_sequential": {"per_s": 900.0},
    "call_concurrent": {"threads": 8, "per_s": 1800.0},
    "call_async_in_flight": {
        "in_flight": 1000,
        "calls": 5000,
        "per_s": 1500.0,
        "p99_ms": 800.0,
        "threads": 8,
        "threads_per_s": 2000.0,
    },
    "stream": {
        "chunks": 100,
        "streams": 5,
        "window": 64,
        "per_s_64B": 12000.0,
        "mb_per_s_64B": 0.768,
        "per_s_4096B": 8000.0,
        "mb_per_s_4096B": 32.768,
        "sequential_calls": 5000,
        "sequential_per_s": 1000.0,
    },
}


def test_calls_in_flight_and_streams_are_divided_by_the_calls_of_their_own_rounds():
    found = report.ratios({"rpcframe": NONBLOCKING_FIGURES})
    assert found == {
        "call_async, 1,000 in flight from one thread / 8 threads of sequential calls "
        "(target >= 1)": 0.75,
        "stream chunks/s (64 B chunks) / sequential calls/s (target >= 10)": 12.0,
        "stream chunks/s (4096 B chunks) / sequential calls/s (target >= 10)": 8.0,
    }


def test_the_report_prints_calls_in_flight_and_streams_beside_the_blocking_calls():
    whole = {
        "url": "fake://",
        "settings": {"payload_size": 100, "calls": 5000, "casts": 5000, "warmup": 300},
        "rpcframe": {"server": "in process", **NONBLOCKING_FIGURES},
    }
    whole["ratios"] = report.ratios(whole)
    out = io.StringIO()
    report.print_report(whole, out)
    text = out.getvalue()
    assert (
        "1,000 in flight from one thread: 1,500.0 calls/s, p99 800.0 ms; "
        "8 threads of sequential calls: 2,000.0 calls/s"
    ) in text
    assert (
        "stream of 4096 B chunks (window 64): 8,000.0 chunks/s, 32.768 MB/s; "
        "sequential calls: 1,000.0 calls/s"
    ) in text
    assert "   0.750  call_async, 1,000 in flight from one thread" in text
