"""The RabbitMQ driver against bad input and bad credentials.

Malformed bodies are published straight into a server's queue with raw
py-amqp (not through rpcframe): the server logs and drops each one and keeps
serving. Wrong credentials fail at once with AuthenticationError; passwords
never appear in log records or exception texts. A slow endpoint does not
hold up the requests behind it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import amqp
import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import exceptions
from rpcframe.drivers import base
from tests import brokers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

SECRET = "s3cr3t-Pa55"


class Echo:
    def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


@pytest.fixture
def topic() -> Iterator[str]:
    yield from brokers.fresh_topic("robust")


MALFORMED = {
    "not JSON": b"this is not json",
    "binary garbage": bytes(range(256)) * 8,
    "wrong envelope version": b'{"oslo.version": "7.0", "oslo.message": "{}"}',
    "envelope with a broken inner message": b'{"oslo.version": "2.0", "oslo.message": "{oops"}',
    "a JSON list": b"[1, 2, 3]",
    "no method": b'{"oslo.version": "2.0", "oslo.message": "{\\"args\\": {}}"}',
    "args not an object": (
        b'{"oslo.version": "2.0", "oslo.message": "{\\"method\\": \\"echo\\", \\"args\\": [1]}"}'
    ),
    "10 MB body": b'{"oslo.version": "2.0", "oslo.message": "' + b"x" * (10 * 1024 * 1024),
}


def test_malformed_bodies_published_raw_are_logged_and_dropped(topic, caplog):
    transport = rpcframe.get_rpc_transport(_conf(), brokers.RABBIT_URL)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s1"), [Echo()])
    server.start()
    caplog.set_level(logging.WARNING, logger="rpcframe.rpc.server")
    conn = amqp.Connection(f"{brokers.RABBIT_HOST}:{brokers.RABBIT_PORT}", "guest", "guest")
    conn.connect()
    try:
        channel = conn.channel()
        for body in MALFORMED.values():
            channel.basic_publish(
                amqp.Message(body, content_type="application/json"),
                exchange="openstack",
                routing_key=topic,
            )
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=30)
        assert client.call({}, "echo", value="still serving") == "still serving"
        deadline = time.monotonic() + 10
        dropped = []
        while len(dropped) < len(MALFORMED) and time.monotonic() < deadline:
            # Messages before the call were handled by then; their log lines
            # may trail it by a worker's scheduling.
            dropped = [r for r in caplog.records if "malformed request" in r.getMessage()]
            client.call({}, "echo", value="flush")
        assert len(dropped) == len(MALFORMED), [r.getMessage()[:120] for r in dropped]
    finally:
        conn.close()
        server.stop()
        server.wait()
        transport.cleanup()


def test_wrong_credentials_fail_at_once_with_an_authentication_error(topic):
    url = f"rabbit://guest:{SECRET}@{brokers.RABBIT_HOST}:{brokers.RABBIT_PORT}/"
    transport = rpcframe.get_rpc_transport(_conf(), url)
    try:
        started = time.monotonic()
        with pytest.raises(exceptions.AuthenticationError) as info:
            transport._driver.send(base.Address("openstack", topic), b"{}", timeout=60)
        assert time.monotonic() - started < 10
        assert "guest" in str(info.value)
        assert SECRET not in str(info.value) and SECRET not in repr(info.value)
        with pytest.raises(exceptions.AuthenticationError):
            transport._driver.listen([base.Address("openstack", topic)])
    finally:
        transport.cleanup()


def test_a_server_with_wrong_credentials_fails_to_start_clearly(topic):
    url = f"rabbit://guest:{SECRET}@{brokers.RABBIT_HOST}:{brokers.RABBIT_PORT}/"
    transport = rpcframe.get_rpc_transport(_conf(), url)
    try:
        server = rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="s1"), [Echo()]
        )
        with pytest.raises(rpcframe.ServerListenError) as info:
            server.start()
        assert isinstance(info.value.__cause__, exceptions.AuthenticationError)
    finally:
        transport.cleanup()


def test_passwords_never_reach_logs_or_errors(caplog):
    brokers.require_rabbitmq()
    caplog.set_level(logging.DEBUG)
    # Nothing listens on port 1: every attempt fails and is logged.
    url = f"rabbit://admin:{SECRET}@127.0.0.1:1,guest:{SECRET}@127.0.0.1:2/"
    transport = rpcframe.get_rpc_transport(_conf(), url + "?rabbit_retry_interval=1")
    try:
        with pytest.raises(exceptions.MessageDeliveryFailure) as info:
            transport._driver.send(base.Address("openstack", "nowhere"), b"{}", retry=1)
        texts = [str(info.value), repr(info.value), repr(transport), repr(transport._driver)]
        texts += [record.getMessage() for record in caplog.records]
        assert any("127.0.0.1:1" in text for text in texts)  # the failures were logged
        assert not [text for text in texts if SECRET in text]
    finally:
        transport.cleanup()


def test_retry_zero_fails_at_once_when_the_broker_is_unreachable():
    transport = rpcframe.get_rpc_transport(_conf(), "rabbit://guest:guest@127.0.0.1:1/")
    try:
        started = time.monotonic()
        with pytest.raises(exceptions.MessageDeliveryFailure):
            transport._driver.send(base.Address("openstack", "nowhere"), b"{}", retry=0)
        assert time.monotonic() - started < 2
    finally:
        transport.cleanup()


def test_retry_zero_still_makes_the_first_attempt():
    # oslo.messaging's meaning: 0 is no retry, not no attempt.
    transport = rpcframe.get_rpc_transport(_conf(), brokers.RABBIT_URL)
    try:
        address = base.Address("openstack", f"retry0_{uuid.uuid4().hex[:8]}")
        transport._driver.send(address, b"{}", retry=0)  # no queue: dropped, but sent
    finally:
        transport.cleanup()


def test_a_send_to_an_unreachable_broker_ends_by_its_timeout():
    transport = rpcframe.get_rpc_transport(_conf(), "rabbit://guest:guest@127.0.0.1:1/")
    try:
        started = time.monotonic()
        with pytest.raises(exceptions.MessagingTimeout):
            transport._driver.send(base.Address("openstack", "nowhere"), b"{}", timeout=1.5)
        assert 1.0 <= time.monotonic() - started < 5
    finally:
        transport.cleanup()


def test_failover_reaches_the_second_host_of_the_url(topic):
    url = (
        f"rabbit://guest:guest@127.0.0.1:1,guest:guest@{brokers.RABBIT_HOST}:"
        f"{brokers.RABBIT_PORT}/?rabbit_retry_interval=1"
    )
    transport = rpcframe.get_rpc_transport(_conf(), url)
    try:
        listener = transport._driver.listen([base.Address("openstack", topic)])
        try:
            transport._driver.send(base.Address("openstack", topic), b"via failover", timeout=30)
            incoming = listener.poll(10)
            assert incoming is not None and incoming.body == b"via failover"
            incoming.ack()
        finally:
            listener.close()
    finally:
        transport.cleanup()


def test_at_least_once_makes_an_unroutable_cast_fail(topic):
    transport = rpcframe.get_rpc_transport(_conf(), brokers.RABBIT_URL)
    try:
        client = rpcframe.get_rpc_client(
            transport,
            rpcframe.Target(topic=topic),
            transport_options=rpcframe.TransportOptions(at_least_once=True),
        )
        with pytest.raises(exceptions.MessageUndeliverable) as info:
            client.cast({}, "echo", value=1)
        assert info.value.routing_key == topic
    finally:
        transport.cleanup()


def test_heartbeats_keep_idle_connections_alive_while_the_application_is_busy(topic):
    # With a 2 s heartbeat RabbitMQ drops a silent connection after about 4 s.
    url = brokers.RABBIT_URL + "?heartbeat_timeout_threshold=2"
    transport = rpcframe.get_rpc_transport(_conf(), url)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s1"), [Echo()])
    server.start()
    try:
        client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
        assert client.call({}, "echo", value=1) == 1
        driver = transport._driver
        links = [driver._publisher.link, *(c.link for c in driver._consumers)]
        before = [link.generation for link in links]
        # The application is busy: no call, no send, no poll of the reply inbox
        # for three broker heartbeat timeouts. Time passing is what is tested.
        time.sleep(6)
        assert [link.generation for link in links] == before
        assert all(link.connected for link in links)
        assert client.call({}, "echo", value=2) == 2
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_a_slow_endpoint_does_not_hold_up_the_next_request(topic):
    # On RabbitMQ the worker that receives a request runs it; once it has run
    # for server_handover_delay another worker receives the next one.
    release, entered = threading.Event(), threading.Event()

    class Slow(Echo):
        def hold(self, ctxt: Any) -> str:
            entered.set()
            release.wait(30)
            return "held"

    transport = rpcframe.get_rpc_transport(_conf(), brokers.RABBIT_URL)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s1"), [Slow()])
    server.start()
    results: list[Any] = []
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=20)
    slow = threading.Thread(target=lambda: results.append(client.call({}, "hold")))
    slow.start()
    try:
        assert entered.wait(20)
        assert client.call({}, "echo", value="next") == "next"
        assert results == []  # the slow one is still running
    finally:
        release.set()
        slow.join(20)
        server.stop()
        server.wait()
        transport.cleanup()
    assert results == ["held"]
