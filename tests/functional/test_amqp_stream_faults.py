"""A stream across dropped connections: every chunk once, in order, in time.

The caller and the server each have a transport of their own. Midway
through a 2,000-chunk stream with a window of 16, the test closes every
connection on the broker (``rabbitmqctl close_all_connections``), twice,
while the caller holds the stream: the server has a window of chunks out
and waits for credit, and both sides' inboxes go with their connections.
What was on its way to a connection that closed is lost (the credit, or
chunks: which, depends on the moment). The server retries the chunks it cannot deliver while the
queue is missing; the caller asks again for what never arrived (resume);
the stream must end with every chunk exactly once and in order, before its
deadline.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from tests import brokers

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(300)]

TOTAL = 2_000
WINDOW = 16
STREAM_TIMEOUT = 90.0


class Chunks:
    def __init__(self) -> None:
        self.finished = threading.Event()

    def numbers(self, ctxt: Any, n: int) -> Iterator[int]:
        try:
            yield from range(n)
        finally:
            self.finished.set()


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"streamfault_x{tag}", f"streamfault_{tag}"
    yield exchange, topic
    brokers.delete_queues(prefixes=(topic,))
    brokers.delete_exchanges([exchange])


def _transport(exchange: str) -> rpcframe.Transport:
    # A short backoff keeps the test short.
    url = brokers.RABBIT_URL + "?rabbit_retry_backoff=1"
    return rpcframe.get_rpc_transport(brokers.conf_for_exchange(exchange), url)


def _close_all_connections() -> None:
    brokers.rabbitmqctl("close_all_connections", "rpcframe stream fault test")


def test_a_stream_resumes_after_every_connection_was_closed(names):
    exchange, topic = names
    server_transport, client_transport = _transport(exchange), _transport(exchange)
    chunks = Chunks()
    server = rpcframe.get_rpc_server(
        server_transport, rpcframe.Target(topic=topic, server="s1"), [chunks]
    )
    server.start()
    try:
        client = rpcframe.get_rpc_client(
            client_transport, rpcframe.Target(topic=topic), timeout=STREAM_TIMEOUT
        )
        started = time.monotonic()
        got = []
        with client.stream({}, "numbers", n=TOTAL, window=WINDOW) as stream:
            for chunk in stream:
                got.append(chunk)
                if len(got) in (500, 1_300):
                    _close_all_connections()
        elapsed = time.monotonic() - started
        assert got == list(range(TOTAL)), (
            f"{len(got)} chunks, {len(set(got))} distinct; first wrong at "
            f"{next((i for i, c in enumerate(got) if c != i), None)}"
        )
        assert elapsed < STREAM_TIMEOUT
        assert chunks.finished.wait(10)
        print(f"{TOTAL} chunks in {elapsed:.1f} s; {dict(stream._stats)}")
    finally:
        server.stop()
        server.wait()
        client_transport.cleanup()
        server_transport.cleanup()
