"""Sender identity on RPC requests: who sent a request, without touching ctxt."""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import identity, wire
from rpcframe.drivers import base

WAIT = 10.0


class _WhoEndpoint:
    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.event = threading.Event()

    def who(self, ctxt: Any) -> Any:
        sender = rpcframe.rpc.current_sender()
        return None if sender is None else sender.to_wire()

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def note(self, ctxt: Any) -> None:
        self.seen.append(rpcframe.rpc.current_sender())
        self.event.set()


@pytest.fixture
def transport() -> Iterator[rpcframe.Transport]:
    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, "fake://")
    yield transport
    transport.cleanup()


@pytest.fixture
def served(transport: rpcframe.Transport) -> Iterator[tuple[str, _WhoEndpoint]]:
    topic = f"sender_{uuid.uuid4().hex[:8]}"
    endpoint = _WhoEndpoint()
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [endpoint]
    )
    server.start()
    yield topic, endpoint
    server.stop()
    server.wait()


def test_an_endpoint_learns_the_host_and_pid_of_the_caller(transport, served):
    topic, _ = served
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=WAIT)
    sender = client.call({}, "who")
    assert sender["host"] == socket.gethostname()
    assert sender["pid"] == os.getpid()
    assert sender["name"] == identity.local_sender().name


def test_the_context_an_endpoint_receives_is_exactly_what_was_sent(transport, served):
    topic, _ = served
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=WAIT)
    ctxt = {"user_id": "u-1", "request_id": "req-1"}
    assert client.call(ctxt, "context") == ctxt


def test_a_request_without_a_sender_gives_none(transport, served):
    topic, endpoint = served
    body = wire.encode_request("note", {}, {})  # as an oslo.messaging client sends it
    assert wire.SENDER_KEY not in wire.decode(body)
    transport._driver.send(base.Address(transport.conf.control_exchange, topic), body)
    assert endpoint.event.wait(WAIT)
    assert endpoint.seen == [None]


def test_there_is_no_sender_outside_an_endpoint():
    assert rpcframe.rpc.current_sender() is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "host",
        {"name": "a", "host": "b"},
        {"name": "a", "host": "b", "pid": "1"},
        {"name": 1, "host": "b", "pid": 1},
        {"name": "a", "host": "b", "pid": True},
    ],
)
def test_a_malformed_sender_reads_as_unknown(value):
    assert identity.Sender.from_wire(value) is None


def test_an_oslo_messaging_server_dispatches_a_request_that_names_its_sender():
    from oslo_messaging._drivers import amqp as oslo_amqp
    from oslo_messaging._drivers import common as oslo_common
    from oslo_messaging.rpc import dispatcher as oslo_dispatcher

    class Endpoint:
        def add(self, ctxt, a, b):
            return {"sum": a + b, "ctxt": ctxt}

    body = wire.encode_request(
        "add", {"a": 2, "b": 3}, {"user": "u-1"}, extra={wire.SENDER_KEY: identity.local_wire()}
    )
    message = oslo_common.deserialize_msg(json.loads(body))
    ctxt = oslo_amqp.unpack_context(message)

    class Incoming:
        pass

    incoming = Incoming()
    incoming.ctxt, incoming.message, incoming.client_timeout = ctxt.to_dict(), message, None
    dispatcher = oslo_dispatcher.RPCDispatcher([Endpoint()], None)
    result = dispatcher.dispatch(incoming)
    assert result["sum"] == 5
    assert result["ctxt"]["user"] == "u-1"
