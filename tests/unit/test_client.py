"""RPCClient: prepare, version caps, argument checks and what goes on the wire."""

from __future__ import annotations

import threading
from unittest import mock

import pytest

import rpcframe
from rpcframe import exceptions, wire
from rpcframe.drivers import base


class Echo:
    def echo(self, ctxt, value):
        return value


class Recorder:
    """Listens on the topic's queue with the raw driver and keeps the bodies."""

    def __init__(self, transport, topic):
        self.listener = transport._driver.listen(
            [base.Address(transport.conf.control_exchange, topic)]
        )

    def next(self):
        incoming = self.listener.poll(5)
        assert incoming is not None, "nothing was sent"
        incoming.ack()
        return wire.decode(incoming.body)


@pytest.fixture
def recorder(transport, topic):
    rec = Recorder(transport, topic)
    yield rec
    rec.listener.close()


def test_prepare_returns_a_new_context_and_leaves_the_client_unchanged(client):
    prepared = client.prepare(server="s1", version="1.1", timeout=3)
    assert prepared.target.server == "s1" and prepared.target.version == "1.1"
    assert prepared.timeout == 3
    assert client.target.server is None and client.timeout == 10


def test_prepare_keeps_settings_it_is_not_given(transport, topic):
    client = rpcframe.get_rpc_client(
        transport,
        rpcframe.Target(topic=topic, version="1.0"),
        timeout=4,
        version_cap="1.3",
        retry=2,
    )
    prepared = client.prepare(server="s")
    assert (prepared.timeout, prepared.version_cap, prepared.retry) == (4, "1.3", 2)
    assert prepared.target.version == "1.0"


def test_prepare_can_clear_a_field_with_none(transport, topic):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic, server="s"))
    assert client.prepare(server=None).target.server is None


def test_prepare_refuses_a_bad_version_as_oslo_does(client):
    with pytest.raises(rpcframe.MessagingException, match="major and minor"):
        client.prepare(version="1")


@pytest.mark.parametrize(
    ("cap", "version", "allowed"),
    [("1.5", "1.2", True), ("1.5", "1.6", False), ("1.5", "2.0", False), (None, "9.0", True)],
)
def test_can_send_version_checks_the_cap(transport, topic, cap, version, allowed):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), version_cap=cap)
    assert client.can_send_version(version) is allowed


def test_can_send_version_defaults_to_the_target_version(transport, topic):
    client = rpcframe.get_rpc_client(
        transport, rpcframe.Target(topic=topic, version="1.4"), version_cap="1.3"
    )
    assert client.can_send_version() is False


def test_a_version_above_the_cap_is_refused_before_sending(transport, topic, recorder):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), version_cap="1.1")
    with pytest.raises(rpcframe.RPCVersionCapError) as info:
        client.prepare(version="1.2").cast({}, "m")
    assert (info.value.version, info.value.version_cap) == ("1.2", "1.1")
    assert recorder.listener.poll(0.05) is None


def test_a_target_without_a_topic_cannot_send(transport):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target())
    with pytest.raises(rpcframe.InvalidTarget, match="topic is required"):
        client.cast({}, "m")


def test_a_method_name_must_be_a_non_empty_string(client):
    with pytest.raises(ValueError, match="method must be"):
        client.cast({}, "")


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": -1}, {"timeout": "5"}, {"call_monitor_timeout": -1}, {"retry": -2}],
)
def test_bad_client_settings_are_refused_clearly_when_used(transport, topic, kwargs):
    # As oslo.messaging: a client is built with anything; the call refuses it.
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), **kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        client.call({}, "m")


def test_a_timeout_of_zero_times_out_at_once(transport, topic):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=0)
    with pytest.raises(rpcframe.MessagingTimeout):
        client.call({}, "m")


def test_a_bad_version_cap_is_refused_when_used(transport, topic):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), version_cap="one")
    with pytest.raises(rpcframe.MessagingException, match="version_cap"):
        client.cast({}, "m")


def test_a_mock_transport_is_accepted_and_sees_oslos_send(topic):
    # Services' unit tests build clients on mock transports, as oslo allows.
    transport = mock.MagicMock()
    transport._send.return_value = "result"
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=5)
    assert client.call({"user": "u"}, "m", a=1) == "result"
    transport._send.assert_called_once_with(
        rpcframe.Target(topic=topic),
        {"user": "u"},
        {"method": "m", "args": {"a": 1}},
        wait_for_reply=True,
        timeout=5,
        call_monitor_timeout=None,
        retry=None,
        transport_options=None,
    )


def test_an_argument_that_cannot_be_sent_is_named(client):
    with pytest.raises(TypeError, match="argument 'handle'.*'open'"):
        client.cast({}, "open", name="ok", handle=object())


def test_a_cast_puts_an_oslo_request_on_the_topic(transport, topic, recorder):
    client = rpcframe.get_rpc_client(
        transport, rpcframe.Target(topic=topic, namespace="ns", version="1.3")
    )
    client.cast({"user": "u"}, "method", a=1)
    message = recorder.next()
    assert message["method"] == "method"
    assert message["args"] == {"a": 1}
    assert (message["namespace"], message["version"]) == ("ns", "1.3")
    assert message["_context_user"] == "u"
    assert "_msg_id" not in message


def test_a_call_request_carries_reply_routing_and_its_deadline(transport, topic, recorder):
    client = rpcframe.get_rpc_client(
        transport, rpcframe.Target(topic=topic), timeout=0.2, call_monitor_timeout=0.1
    )
    with pytest.raises(rpcframe.MessagingTimeout):
        client.call({}, "method")
    message = recorder.next()
    assert message["_reply_q"].startswith("reply_")
    assert message["_timeout"] == 0.1
    assert isinstance(message["_deadline"], float)
    assert len(message["_msg_id"]) == 32


def test_a_timeout_names_the_method_and_target(transport, topic):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=0.05)
    with pytest.raises(rpcframe.MessagingTimeout) as info:
        client.call({}, "slow_thing")
    assert info.value.method == "slow_thing"
    assert info.value.timeout == 0.05
    assert info.value.target.topic == topic


def test_the_default_timeout_is_rpc_response_timeout(transport, topic):
    transport.conf.set_override("rpc_response_timeout", 1)
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic))
    with pytest.raises(rpcframe.MessagingTimeout) as caught:
        client.call({}, "nobody_serves_this")
    assert caught.value.timeout == 1


def test_the_serializer_sees_arguments_context_and_result(transport, topic, serve):
    seen = []

    class Tagging(rpcframe.NoOpSerializer):
        def serialize_entity(self, ctxt, entity):
            seen.append(("out", entity))
            return {"tagged": entity}

        def deserialize_entity(self, ctxt, entity):
            seen.append(("in", entity))
            return entity["tagged"] if isinstance(entity, dict) and "tagged" in entity else entity

        def serialize_context(self, ctxt):
            return {"who": ctxt.upper()}

    serve(Echo(), serializer=Tagging())
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), serializer=Tagging())
    assert client.call("alice", "echo", value=3) == 3
    assert ("out", 3) in seen


def test_at_least_once_makes_an_unroutable_cast_fail(transport):
    client = rpcframe.get_rpc_client(
        transport,
        rpcframe.Target(topic="nobody-listens-here"),
        transport_options=rpcframe.TransportOptions(at_least_once=True),
    )
    with pytest.raises(rpcframe.MessageUndeliverable):
        client.cast({}, "m")


def test_an_unroutable_cast_without_at_least_once_is_accepted(transport):
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic="nobody-listens-here"))
    client.cast({}, "m")


def test_a_driver_failure_becomes_a_client_send_error(transport, topic, monkeypatch):
    def broken(*args, **kwargs):
        raise exceptions.TransportDriverError("wire cut")

    monkeypatch.setattr(transport._driver, "send", broken)
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic))
    with pytest.raises(rpcframe.ClientSendError) as info:
        client.cast({}, "m")
    assert "wire cut" in str(info.value)
    assert info.value.target.topic == topic


def test_concurrent_callers_each_get_their_own_reply(transport, topic, serve, client):
    serve(Echo())
    results = {}

    def call(n):
        results[n] = [client.call({}, "echo", value=(n, i)) for i in range(30)]

    threads = [threading.Thread(target=call, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {n: [[n, i] for i in range(30)] for n in range(6)}


def test_repr_names_the_target(client, topic):
    assert topic in repr(client)
