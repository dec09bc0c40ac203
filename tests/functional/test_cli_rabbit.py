"""``rpcframe demo`` on RabbitMQ leaves nothing behind: no queue, no exchange.

oslo's RPC server queues outlive their servers; the demo's are auto-delete
and live in an exchange of its own, named after its topic (which its first
line shows), so they go away when it ends, however it ends.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator

import pytest

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
