"""rpcframe and oslo.messaging on one RabbitMQ, each in its own process.

An rpcframe client calls an oslo.messaging server and an oslo.messaging
client calls rpcframe servers: results, contexts, remote errors (builtin and
application), version and namespace checks, direct calls, casts and fanout.
Notifications cross at the driver level in both directions, including
store-and-forward (sent before any listener exists). The oslo.messaging side
runs in ``oslo_peer.py``, which imports oslo.messaging and never rpcframe.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from rpcframe import wire
from rpcframe.drivers import base
from tests import brokers
from tests.functional import peers
from tests.functional.interop_common import InteropEndpoint, InteropError

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

ALLOWED = ["tests.functional.interop_common"]
WAIT = 20.0


class Endpoint(InteropEndpoint):
    """The oslo.messaging peer's endpoint, served by rpcframe."""

    target = rpcframe.Target(version="1.3")


class AdminEndpoint:
    target = rpcframe.Target(namespace="admin", version="2.1")

    def ping(self, ctxt: Any) -> str:
        return "admin-pong"


@pytest.fixture(scope="module")
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"interop_x{tag}", f"interop_{tag}"
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


def _server(transport: rpcframe.Transport, topic: str, endpoint: Endpoint) -> Any:
    server = rpcframe.get_rpc_server(
        transport,
        rpcframe.Target(topic=topic, server=endpoint.name),
        [endpoint, AdminEndpoint()],
    )
    server.start()
    return server


def _stop(*servers: Any) -> None:
    for server in servers:
        server.stop()
        server.wait()


# -- an rpcframe client calling an oslo.messaging server ---------------------------


@pytest.fixture(scope="module")
def oslo_peer(
    names: tuple[str, str], transport: rpcframe.Transport
) -> Iterator[tuple[str, Endpoint]]:
    """An oslo.messaging server ``oslo-1`` and an rpcframe server ``rf-1`` on one topic."""
    exchange, topic = names
    ours = Endpoint("rf-1")
    server = _server(transport, f"{topic}_a", ours)
    try:
        with peers.oslo_server(brokers.RABBIT_URL, exchange, f"{topic}_a", "oslo-1"):
            yield f"{topic}_a", ours
    finally:
        _stop(server)


@pytest.fixture
def to_oslo(transport: rpcframe.Transport, oslo_peer: tuple[str, Endpoint]) -> Any:
    topic, _ = oslo_peer
    return rpcframe.get_rpc_client(
        transport, rpcframe.Target(topic=topic, server="oslo-1", version="1.0"), timeout=WAIT
    )


CTXT = {"user_id": "rf-user", "roles": ["admin"], "request_id": "req-rf"}


def test_an_rpcframe_call_gets_the_oslo_servers_result(to_oslo):
    assert to_oslo.call(CTXT, "add", a=40, b=2) == 42


def test_the_context_reaches_the_oslo_server_intact(to_oslo):
    seen = to_oslo.call(CTXT, "context")
    # oslo.messaging's server adds the call's client_timeout to the context it hands out.
    assert {key: seen[key] for key in CTXT} == CTXT


def test_a_builtin_error_raised_by_oslo_comes_back_as_itself(to_oslo):
    with pytest.raises(ValueError, match="bad value"):
        to_oslo.call(CTXT, "fail_builtin", message="bad value")


def test_an_allowed_application_error_from_oslo_is_rebuilt(to_oslo):
    with pytest.raises(InteropError) as info:
        to_oslo.call(CTXT, "fail_custom", code=7)
    assert info.value.code == 7


def test_oslo_refuses_a_version_it_lacks(to_oslo):
    with pytest.raises(rpcframe.RemoteError) as info:
        to_oslo.prepare(version="2.0").call(CTXT, "add", a=1, b=1)
    assert info.value.exc_type == "UnsupportedVersion"


def test_oslo_refuses_an_unknown_method(to_oslo):
    with pytest.raises(rpcframe.RemoteError) as info:
        to_oslo.call(CTXT, "no_such_method")
    assert info.value.exc_type == "NoSuchMethod"


def test_a_namespaced_call_reaches_the_oslo_endpoint_of_that_namespace(to_oslo):
    assert to_oslo.prepare(namespace="admin", version="2.0").call(CTXT, "ping") == "admin-pong"


def test_an_rpcframe_cast_runs_on_the_oslo_server(to_oslo):
    to_oslo.cast(CTXT, "record", value="cast-from-rf")
    assert "cast-from-rf" in _wait_recorded(to_oslo, "cast-from-rf")


def test_an_rpcframe_fanout_reaches_oslo_and_rpcframe_servers(to_oslo, oslo_peer):
    _, ours = oslo_peer
    to_oslo.prepare(server=None, fanout=True).cast(CTXT, "record", value="fanout-from-rf")
    assert ours.got.wait(WAIT)
    assert "fanout-from-rf" in ours.records
    assert "fanout-from-rf" in _wait_recorded(to_oslo, "fanout-from-rf")


def _wait_recorded(client: Any, value: str) -> list[Any]:
    """The peer's records once ``value`` is among them (a cast runs asynchronously)."""
    deadline = time.monotonic() + WAIT
    recorded = client.call(CTXT, "recorded")
    while value not in recorded and time.monotonic() < deadline:
        # Ask again: each call is a round trip, so this waits on the peer, not a timer.
        recorded = client.call(CTXT, "recorded")
    return recorded


# -- an oslo.messaging client calling rpcframe servers ----------------------------------


@pytest.fixture(scope="module")
def from_oslo(
    names: tuple[str, str], transport: rpcframe.Transport
) -> Iterator[tuple[dict[str, Any], Endpoint, Endpoint]]:
    exchange, topic = names
    one, two = Endpoint("rf-1", expected=1), Endpoint("rf-2", expected=1)
    servers = [_server(transport, f"{topic}_b", one), _server(transport, f"{topic}_b", two)]
    try:
        outcomes = peers.run_oslo("client", brokers.RABBIT_URL, exchange, f"{topic}_b")
        yield outcomes, one, two
    finally:
        _stop(*servers)


def test_an_oslo_call_gets_the_rpcframe_servers_result(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["add"] == {"result": 42}


def test_the_oslo_context_reaches_the_rpcframe_server_intact(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["context"] == {
        "result": {"user_id": "oslo-user", "roles": ["reader"], "request_id": "req-oslo"}
    }


def test_a_builtin_error_raised_by_rpcframe_reaches_oslo_as_itself(from_oslo):
    outcomes, _, _ = from_oslo
    # oslo.messaging cannot subclass builtins on the fly: it raises the builtin itself.
    assert outcomes["fail_builtin"]["error"] == "ValueError"
    assert outcomes["fail_builtin"]["message"] == "bad value"


def test_an_allowed_application_error_from_rpcframe_is_rebuilt_by_oslo(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["fail_custom"]["error"] == "InteropError_Remote"
    assert outcomes["fail_custom"]["code"] == 7


def test_rpcframe_refuses_a_version_it_lacks_in_oslos_terms(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["too_new"]["error"] == "RemoteError"
    assert outcomes["too_new"]["exc_type"] == "UnsupportedVersion"
    assert outcomes["newer_minor"]["exc_type"] == "UnsupportedVersion"


def test_rpcframe_refuses_an_unknown_method_in_oslos_terms(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["no_such_method"]["exc_type"] == "NoSuchMethod"


def test_an_oslo_namespaced_call_reaches_the_rpcframe_endpoint(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["admin_ping"] == {"result": "admin-pong"}


def test_an_oslo_direct_call_reaches_the_named_rpcframe_server(from_oslo):
    outcomes, _, _ = from_oslo
    assert outcomes["direct"] == {"result": "rf-2"}


def test_oslo_casts_and_fanouts_run_on_rpcframe_servers(from_oslo):
    outcomes, one, two = from_oslo
    assert outcomes["cast"] == {"result": None}
    assert outcomes["fanout"] == {"result": None}
    deadline = time.monotonic() + WAIT
    for endpoint in (one, two):
        assert endpoint.got.wait(max(0.0, deadline - time.monotonic()))

    def everything() -> list[Any]:
        return one.records + two.records

    # Both got the fanout; exactly one of them got the cast (shared topic queue).
    while everything().count("fanout-from-oslo") < 2 or "cast-from-oslo" not in everything():
        assert time.monotonic() < deadline, everything()
        one.got.clear()
        one.got.wait(0.1)  # a cast still on its way: wait for the endpoint's next record
    assert "fanout-from-oslo" in one.records and "fanout-from-oslo" in two.records
    assert everything().count("cast-from-oslo") == 1


# -- notifications, at the driver level -------------------------------------------------


def _notification(priority: str, event_type: str, payload: Any) -> bytes:
    """A messagingv2 notification body, as oslo.messaging's notifier builds it."""
    message = {
        "message_id": str(uuid.uuid4()),
        "publisher_id": "rpcframe.test",
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload,
        "timestamp": "2024-01-01 00:00:00.000000",
    }
    wire.pack_context(message, {"user_id": "rf-user"})
    return wire.encode(message)


def test_notifications_sent_before_any_listener_reach_an_oslo_listener(names, transport):
    exchange, topic = names
    driver = transport._driver
    driver.send(
        base.Address(exchange, f"{topic}_n1.info", kind=base.NOTIFY),
        _notification("info", "rf.info", {"n": 1}),
    )
    driver.send(
        base.Address(exchange, f"{topic}_n1.error", kind=base.NOTIFY),
        _notification("error", "rf.error", {"n": 2}),
    )
    got = peers.run_oslo("listen", brokers.RABBIT_URL, exchange, f"{topic}_n1", "2")
    for notification in got:
        # oslo.messaging adds the (unset) client_timeout to every context it hands out.
        assert notification["ctxt"].pop("client_timeout", None) is None
    assert sorted(got, key=lambda n: n["priority"]) == [
        {
            "priority": "error",
            "ctxt": {"user_id": "rf-user"},
            "publisher_id": "rpcframe.test",
            "event_type": "rf.error",
            "payload": {"n": 2},
        },
        {
            "priority": "info",
            "ctxt": {"user_id": "rf-user"},
            "publisher_id": "rpcframe.test",
            "event_type": "rf.info",
            "payload": {"n": 1},
        },
    ]


def test_oslo_notifications_wait_in_their_queues_for_an_rpcframe_listener(names, transport):
    exchange, topic = names
    assert peers.run_oslo("notify", brokers.RABBIT_URL, exchange, f"{topic}_n2") == "sent"
    listener = transport._driver.listen(
        [
            base.Address(exchange, f"{topic}_n2.info", kind=base.NOTIFY),
            base.Address(exchange, f"{topic}_n2.error", kind=base.NOTIFY),
        ]
    )
    try:
        messages = []
        for _ in range(2):
            incoming = listener.poll(WAIT)
            assert incoming is not None
            messages.append(wire.decode(incoming.body))
            incoming.ack()
    finally:
        listener.close()
    by_priority = {m["priority"]: m for m in messages}
    assert set(by_priority) == {"INFO", "ERROR"}
    info = by_priority["INFO"]
    assert info["event_type"] == "peer.info"
    assert info["publisher_id"] == "oslo.peer"
    assert info["payload"] == {"n": 1}
    context = wire.unpack_context(info)
    assert context["user"] == "oslo-user"
    assert context["project_id"] == "oslo-project"
