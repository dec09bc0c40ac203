"""The ``rpcframe`` command on RabbitMQ.

``rpcframe demo`` leaves nothing behind: no queue, no exchange. oslo's RPC
server queues outlive their servers; the demo's are auto-delete and live in
an exchange of its own, named after its topic (which its first line shows),
so they go away when it ends, however it ends.

``rpcframe call``, ``stream`` and ``ping`` run as commands against a server
of the test's, on a topic and an exchange of its own that the test removes.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import rpcframe
from rpcframe.cli import main
from tests import brokers
from tests.commands import Command

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]


def demo_topic(first_line: str) -> str:
    found = re.search(r"\(topic (demo_\w+)\)", first_line)
    assert found, first_line
    return found.group(1)


@pytest.fixture
def topics() -> Iterator[list[str]]:
    """The topics of the demos a test ran; whatever they left is removed at teardown."""
    brokers.require_rabbitmq()
    seen: list[str] = []
    yield seen
    if seen:
        brokers.delete_queues(prefixes=seen)
        brokers.delete_exchanges(names=seen)


def left_behind(topic: str) -> dict[str, list[str]]:
    return {
        "queues": sorted(brokers.queue_properties([topic])),
        "exchanges": sorted(brokers.exchange_properties([topic])),
    }


def left_behind_once_the_broker_has_cleaned_up(topic: str, within: float = 15.0):
    """What is left once RabbitMQ had ``within`` seconds to delete auto-delete queues.

    The broker deletes them after it sees the process's connection close,
    which may be a moment after the process has exited.
    """
    deadline = time.monotonic() + within
    left = left_behind(topic)
    while left != {"queues": [], "exchanges": []} and time.monotonic() < deadline:
        left = left_behind(topic)  # each look is a rabbitmqctl run: it paces the loop
    return left


def test_the_demo_leaves_no_queue_and_no_exchange_behind(topics):
    out = io.StringIO()
    status = main(["demo", "--url", brokers.RABBIT_URL, "--calls", "20"], out=out)
    assert status == 0, out.getvalue()
    topics.append(demo_topic(out.getvalue()))
    assert left_behind(topics[0]) == {"queues": [], "exchanges": []}


def test_the_demo_interrupted_leaves_no_queue_and_no_exchange_behind(topics):
    with Command("demo", "--url", brokers.RABBIT_URL, "--calls", "1000000000") as demo:
        demo.wait_for("call at version 2.0")
        topics.append(demo_topic(demo.out[0]))
        running = brokers.queue_properties(topics)
        assert {topics[0], f"{topics[0]}.demo-server"} <= running.keys()
        demo.interrupt()
        status, _ = demo.finish()
    assert status == 130
    assert left_behind_once_the_broker_has_cleaned_up(topics[0]) == {"queues": [], "exchanges": []}


# -- rpcframe call, stream and ping against a server on RabbitMQ ------------------------


class Service:
    """What the server offers the commands; a closed stream sets an event."""

    def __init__(self):
        self.generator_closed = threading.Event()

    def add(self, ctxt, a, b):
        return a + b

    def divide(self, ctxt, a, b):
        return a / b

    def count(self, ctxt, n):
        for i in range(n):
            yield {"i": i}

    def forever(self, ctxt):
        try:
            yield from itertools.count()
        finally:
            self.generator_closed.set()


@pytest.fixture
def served() -> Iterator[tuple[Service, list[str]]]:
    """A server answering pings on a topic and an exchange of its own; removed at teardown.

    Yields the endpoint and the options that name its target.
    """
    brokers.require_rabbitmq()
    topic = f"cli_{uuid.uuid4().hex[:8]}"
    conf = brokers.conf_for_exchange(topic)
    transport = rpcframe.get_rpc_transport(conf, brokers.RABBIT_URL)
    transport.conf.set_override("rpc_ping_enabled", True)
    endpoint = Service()
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="cli-server"), [endpoint]
    )
    server.start()
    try:
        yield endpoint, ["--url", brokers.RABBIT_URL, "--exchange", topic, "--topic", topic]
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
        brokers.delete_queues(prefixes=[topic])
        brokers.delete_exchanges(names=[topic], prefixes=[f"{topic}_fanout"])


def finished(*argv: str) -> tuple[int, list[str], list[str]]:
    with Command(*argv) as cmd:
        status, _ = cmd.finish()
    return status, cmd.out, cmd.err


def test_call_prints_the_result_of_a_server_on_rabbitmq(served):
    _, target = served
    assert finished("call", *target, "--method", "add", "a=2", "b=3") == (0, ["5\n"], [])


def test_call_names_the_remote_exception_in_one_line(served):
    _, target = served
    status, out, err = finished("call", *target, "--method", "divide", "a=1", "b=0")
    assert (status, out) == (1, [])
    assert err == [
        "rpcframe call: divide raised ZeroDivisionError on server cli-server: division by zero\n"
    ]


def test_stream_prints_the_chunks_as_json_lines(served):
    _, target = served
    status, out, err = finished("stream", *target, "--method", "count", "n=5", "--json")
    assert (status, err) == (0, [])
    assert [json.loads(line) for line in out] == [{"i": i} for i in range(5)]


def test_ctrl_c_closes_a_stream_on_the_server(served):
    endpoint, target = served
    with Command("stream", *target, "--method", "forever", "--window", "4") as cmd:
        cmd.wait_for("3")
        cmd.interrupt()
        status, _ = cmd.finish()
    assert status == 130
    assert cmd.err[-1] == "rpcframe stream: interrupted\n"
    assert endpoint.generator_closed.wait(30)  # the server was told, and closed it


def test_ping_shows_the_server_that_answered(served):
    _, target = served
    status, out, err = finished("ping", *target, "--count", "2")
    assert (status, err) == (0, [])
    assert out[0].startswith("1: pong from cli-server in ")
    assert out[1].startswith("2: pong from cli-server in ")
    assert out[3].startswith("cli-server: 2 pongs, min/avg/max ")
