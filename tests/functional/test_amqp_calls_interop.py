"""Call handles and streams beside oslo.messaging, on one RabbitMQ.

rpcframe's call extensions travel under the ``_rpcframe`` key, which an
oslo.messaging server ignores: ``call_async`` to an oslo server gets the
result; cancelling it only stops the waiting (the oslo server never
announced the call, so nothing is sent to it, and it logs no error);
``stream()`` to it fails at once with StreamNotSupported when its plain
reply arrives. A plain call carries no ``_rpcframe`` key at all, and plain
calls still cross both ways. The oslo.messaging side runs in
``oslo_peer.py``, in a process of its own.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from rpcframe import exceptions, wire
from rpcframe.rpc import current_call
from rpcframe.rpc.handles import ANNOUNCE_AFTER
from rpcframe.wire import calls as wire_calls
from tests import brokers
from tests.functional import peers
from tests.functional.interop_common import InteropEndpoint

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

ALLOWED = ["tests.functional.interop_common"]
WAIT = 20.0
CTXT = {"user_id": "rf-user", "request_id": "req-rf"}


class Endpoint(InteropEndpoint):
    """What the rpcframe server serves to the oslo.messaging client."""

    target = rpcframe.Target(version="1.3")

    def about_this_call(self, ctxt: Any) -> dict[str, Any]:
        call = current_call()
        assert call is not None
        return {"id": call.id, "deadline": call.deadline, "remaining": call.time_remaining()}

    def count(self, ctxt: Any, n: int) -> Iterator[int]:
        yield from range(n)


@pytest.fixture(scope="module")
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"callsx_{tag}", f"calls_{tag}"
    yield exchange, topic
    brokers.delete_queues(prefixes=(topic,))
    brokers.delete_exchanges([exchange])


@pytest.fixture(scope="module")
def transport(names: tuple[str, str]) -> Iterator[rpcframe.Transport]:
    exchange, _ = names
    transport = rpcframe.get_rpc_transport(
        brokers.conf_for_exchange(exchange), brokers.RABBIT_URL, allowed_remote_exmods=ALLOWED
    )
    yield transport
    transport.cleanup()


@contextlib.contextmanager
def _oslo_server(names: tuple[str, str]) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """An oslo.messaging server ``oslo-1`` on a topic of its own, until the block ends."""
    exchange, topic = names
    own_topic = f"{topic}_{uuid.uuid4().hex[:6]}"
    with peers.oslo_process("server", brokers.RABBIT_URL, exchange, own_topic, "oslo-1") as proc:
        assert peers.read_line(proc, 60) == "ready"
        yield own_topic, proc


@pytest.fixture
def oslo_topic(names: tuple[str, str]) -> Iterator[str]:
    with _oslo_server(names) as (topic, _):
        yield topic


def _to_oslo(transport: rpcframe.Transport, topic: str) -> Any:
    target = rpcframe.Target(topic=topic, server="oslo-1", version="1.0")
    return rpcframe.get_rpc_client(transport, target, timeout=WAIT)


class _Sent:
    """Every message body the transport's driver sends, decoded; its control messages counted."""

    def __init__(self, transport: rpcframe.Transport, monkeypatch: pytest.MonkeyPatch) -> None:
        self.messages: list[dict[str, Any]] = []
        self.controls = 0
        driver = transport._driver
        send, send_control = driver.send, transport._send_control

        def spy_send(address: Any, body: bytes, **kwargs: Any) -> Any:
            self.messages.append(wire.decode(body))
            return send(address, body, **kwargs)

        def spy_control(*args: Any, **kwargs: Any) -> Any:
            self.controls += 1
            return send_control(*args, **kwargs)

        monkeypatch.setattr(driver, "send", spy_send)
        monkeypatch.setattr(transport, "_send_control", spy_control)

    def requests(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("method") == method]

    def cancels(self) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages
            if "cancel" in (wire_calls.annotation(m) or {}) and "method" not in m
        ]


# -- rpcframe calling an oslo.messaging server ---------------------------------------


def test_a_handle_gets_the_oslo_servers_result(transport, oslo_topic):
    topic = oslo_topic
    handle = _to_oslo(transport, topic).call_async(CTXT, "add", a=40, b=2)
    assert handle.result(WAIT) == 42
    assert handle.server is None  # an oslo server never says it runs the call


def test_cancelling_a_call_to_an_oslo_server_only_stops_the_waiting(names, transport, monkeypatch):
    with _oslo_server(names) as (topic, proc):
        client = _to_oslo(transport, topic)
        sent = _Sent(transport, monkeypatch)
        handle = client.call_async(CTXT, "block", seconds=WAIT)
        assert handle.cancel()
        assert handle.cancelled() and handle.done()
        client.cast(CTXT, "release")
        # Returns once the oslo server's block call has returned (and replied).
        assert client.call(CTXT, "block_finished", seconds=WAIT) is True
        assert client.call(CTXT, "add", a=1, b=1) == 2  # it goes on serving
        monkeypatch.undo()
    assert sent.controls == 0
    assert sent.cancels() == []
    [request] = sent.requests("block")
    assert wire_calls.annotation(request) == {"announce": ANNOUNCE_AFTER}
    assert proc.stderr is not None
    logged = proc.stderr.read()  # WARNING and above: the peer configures no logging
    assert "Traceback" not in logged and "rror" not in logged, logged


def test_a_stream_from_an_oslo_server_fails_at_once_as_not_supported(transport, oslo_topic):
    topic = oslo_topic
    started = time.monotonic()
    stream = _to_oslo(transport, topic).stream(CTXT, "add", a=1, b=2)
    with pytest.raises(exceptions.StreamNotSupported, match="plain reply"):
        next(stream)
    assert time.monotonic() - started < WAIT / 4
    assert stream.id not in transport._waiter._watches


def test_a_plain_call_to_an_oslo_server_carries_no_rpcframe_key(transport, oslo_topic, monkeypatch):
    topic = oslo_topic
    sent = _Sent(transport, monkeypatch)
    assert _to_oslo(transport, topic).call(CTXT, "add", a=2, b=3) == 5
    [request] = sent.requests("add")
    assert wire_calls.KEY not in request
    assert request["_msg_id"] and request["_reply_q"]


# -- oslo.messaging calling an rpcframe server -------------------------------------------


@pytest.fixture(scope="module")
def rpcframe_topic(names: tuple[str, str], transport: rpcframe.Transport) -> Iterator[str]:
    _, topic = names
    ours = f"{topic}_rf"
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=ours, server="rf-1"), [Endpoint("rf-1")]
    )
    server.start()
    yield ours
    server.stop()
    server.wait()


def _oslo_call(names: tuple[str, str], topic: str, method: str, **kwargs: Any) -> Any:
    exchange, _ = names
    return peers.run_oslo("call", brokers.RABBIT_URL, exchange, topic, method, json.dumps(kwargs))


def test_an_oslo_call_still_gets_the_rpcframe_servers_result(names, rpcframe_topic):
    assert _oslo_call(names, rpcframe_topic, "add", a=40, b=2) == {"result": 42}


def test_an_oslo_call_runs_with_no_deadline_in_current_call(names, rpcframe_topic):
    # oslo.messaging sends no _deadline: the endpoint sees none, and its id is oslo's msg_id.
    seen = _oslo_call(names, rpcframe_topic, "about_this_call")["result"]
    assert seen["deadline"] is None and seen["remaining"] is None
    assert isinstance(seen["id"], str) and seen["id"]


def test_an_oslo_call_to_a_generator_method_is_a_clear_type_error(names, rpcframe_topic):
    outcome = _oslo_call(names, rpcframe_topic, "count", n=3)
    assert outcome["error"] == "TypeError"
    assert "stream" in outcome["message"]
