"""Benches against this machine's services, small counts: RabbitMQ's costs, asyncio on ZeroMQ."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest

from rpcframe import cli
from rpcframe.bench import costs
from tests.brokers import RABBIT_URL, list_queues, require_rabbitmq

pytestmark = pytest.mark.timeout(300)


def test_every_part_of_the_protocol_and_rpcframe_get_a_rate_and_cpu_figures():
    require_rabbitmq()
    queues_before = set(list_queues())
    out = io.StringIO()
    argv = ["bench", "--url", RABBIT_URL, "--protocol-costs", "--calls", "30", "--casts", "30"]
    assert cli.main([*argv, "--rounds", "2", "--no-progress", "--json", "-"], out=out) == 0
    report = json.loads(out.getvalue())
    assert report["rounds"] == 2
    expected = [f"calls: {v.name}" for v in costs.CALLS] + ["calls: rpcframe"]
    expected += [f"casts: {v.name}" for v in costs.CASTS] + ["casts: rpcframe"]
    figures = report["figures"]
    assert list(figures) == expected
    for name, row in figures.items():
        assert row["per_s"] > 0, name
        assert row["client_us"] >= 0, name
        # The broker runs on this machine, so its CPU is read too.
        assert "broker_us" in row and "server_us" in row, name
    # Every queue it made, the bare servers' and rpcframe's, is gone again.
    left = {q for q in set(list_queues()) - queues_before if not q.startswith("reply_")}
    assert not left, left


def test_the_raw_references_of_compare_measure_and_clean_up_after_themselves():
    from rpcframe.bench.raw import RawAmqp

    require_rabbitmq()
    queues_before = set(list_queues())
    with RawAmqp(RABBIT_URL, payload_size=100, warmup=5, timeout=30) as raw:
        assert len(raw.round_trips(7)) == 7
        assert len(raw.protocol_round_trips(7)) == 7
        assert raw.confirmed_publishes(7) > 0
        assert raw.protocol_confirmed_casts(7) > 0
    left = {q for q in set(list_queues()) - queues_before if not q.startswith("reply_")}
    assert not left, left


def test_the_asyncio_bench_on_zmq_gives_every_figure_beside_raw_pyzmq():
    from tests.conftest import require_service
    from tests.functional.zmq_common import URL

    require_service("Redis", "127.0.0.1", 6379)
    out = io.StringIO()
    argv = ["bench", "--url", URL, "--asyncio", "--calls", "40", "--in-flight", "20"]
    assert cli.main([*argv, "--rounds", "1", "--no-progress", "--json", "-"], out=out) == 0
    report = json.loads(out.getvalue())
    rates = report["calls_per_second"]
    expected = {
        "aio_sequential",
        "raw_zmq_sequential",
        "aio_in_flight",
        "aio_in_flight_to_threaded_server",
        "threaded",
    }
    uvloop = importlib.util.find_spec("uvloop") is not None  # tox installs it
    assert report["settings"]["uvloop"] is uvloop
    if uvloop:
        expected |= {"aio_sequential_uvloop", "aio_in_flight_uvloop"}
        assert report["ratios"]["aio_sequential_uvloop / aio_sequential"] == pytest.approx(
            rates["aio_sequential_uvloop"] / rates["aio_sequential"]
        )
    assert set(rates) == expected
    assert all(rate > 0 for rate in rates.values()), rates
    assert report["ratios"]["aio_sequential / raw_zmq_sequential"] == pytest.approx(
        rates["aio_sequential"] / rates["raw_zmq_sequential"]
    )
