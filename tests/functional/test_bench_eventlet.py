"""``rpcframe bench --eventlet`` against the RabbitMQ on this machine, with small counts."""

from __future__ import annotations

import io
import json

import pytest

from rpcframe import cli
from rpcframe.bench import patched
from tests.brokers import RABBIT_URL, list_queues, require_rabbitmq

pytestmark = pytest.mark.timeout(300)


def test_each_side_gets_its_figures_the_ratios_come_out_and_no_queue_is_left():
    pytest.importorskip("eventlet")
    require_rabbitmq()
    queues_before = set(list_queues())
    out = io.StringIO()
    argv = ["bench", "--eventlet", "--url", RABBIT_URL, "--calls", "24", "--threads", "3"]
    argv += ["--rounds", "2", "--warmup", "5", "--no-progress", "--json", "-"]
    argv += ["--in-flight", "10", "--stream-chunks", "40"]
    assert cli.main(argv, out) == 0
    report = json.loads(out.getvalue())
    assert list(report["sides"]) == [name for name, _, _ in patched.SIDES]
    for name, section in report["sides"].items():
        assert section["call_sequential"]["calls"] == 24, name
        assert section["call_concurrent"]["calls"] == 24, name
        assert section["call_concurrent"]["threads"] == 3, name
        assert section["call_sequential"]["per_s"] > 0, name
    for name in ("rpcframe (eventlet)", "rpcframe (threads)"):
        section = report["sides"][name]
        assert section["call_async_in_flight"]["calls"] == 30, name
        assert section["stream"]["per_s_64B"] > 0 and section["stream"]["per_s_4096B"] > 0, name
    assert "call_async_in_flight" not in report["sides"]["oslo.messaging (eventlet)"]
    # 4 against threads and oslo.messaging; 3 on each rpcframe side.
    assert len(report["ratios"]) == 10
    # Reply queues and the fanout queues of oslo.messaging expire on their own.
    left = {
        q for q in set(list_queues()) - queues_before if "reply_" not in q and "_fanout" not in q
    }
    assert not left, left
