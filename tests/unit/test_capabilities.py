"""The core refuses, when a client or notifier is built, what the driver cannot do."""

from __future__ import annotations

import logging

import pytest

import rpcframe
from rpcframe import exceptions
from rpcframe import transport as msg_transport
from rpcframe.drivers import base, fake
from rpcframe.testing.contract import DriverContract


class _Brokerless(fake.FakeDriver):
    """The fake, declaring what a brokerless driver cannot do."""

    capabilities = base.Capabilities(
        fanout=False, mandatory=False, store_and_forward=False, durable_notifications=False
    )


@pytest.fixture
def brokerless(conf):
    url = msg_transport.TransportURL.parse(conf, "fake://")
    transport = msg_transport.RPCTransport(_Brokerless(conf, url))
    yield transport
    transport.cleanup()


def test_a_fanout_client_on_a_driver_without_fanout_is_refused_when_built(brokerless):
    with pytest.raises(exceptions.ConfigurationError, match="cannot fan a cast out"):
        rpcframe.get_rpc_client(brokerless, rpcframe.Target(topic="t", fanout=True))


def test_preparing_fanout_on_a_driver_without_fanout_is_refused(brokerless):
    client = rpcframe.get_rpc_client(brokerless, rpcframe.Target(topic="t"))
    with pytest.raises(exceptions.ConfigurationError, match="cannot fan a cast out"):
        client.prepare(fanout=True)


def test_a_target_changed_to_fanout_after_the_client_was_built_is_refused_at_send(brokerless):
    client = rpcframe.get_rpc_client(brokerless, rpcframe.Target(topic="t"))
    client.target.fanout = True
    with pytest.raises(exceptions.ConfigurationError, match="'fake' transport"):
        client.cast({}, "method")


def test_at_least_once_on_a_driver_that_cannot_report_unroutable_messages_is_refused(brokerless):
    options = rpcframe.TransportOptions(at_least_once=True)
    with pytest.raises(exceptions.ConfigurationError, match="cannot send at_least_once"):
        rpcframe.get_rpc_client(brokerless, rpcframe.Target(topic="t"), transport_options=options)


def test_a_notifier_on_a_driver_without_durable_notifications_says_what_is_lost(brokerless, caplog):
    with caplog.at_level(logging.WARNING, logger="rpcframe.notify.messaging"):
        rpcframe.Notifier(brokerless, "p", driver="messagingv2", topics=["audit"])
    assert "keeps no notifications for listeners that are not running" in caplog.text
    assert "audit" in caplog.text


def test_a_driver_with_every_capability_builds_all_of_these_quietly(transport, caplog):
    options = rpcframe.TransportOptions(at_least_once=True)
    with caplog.at_level(logging.WARNING, logger="rpcframe"):
        rpcframe.get_rpc_client(
            transport, rpcframe.Target(topic="t", fanout=True), transport_options=options
        )
        rpcframe.Notifier(transport, "p", driver="messagingv2", topics=["audit"])
    assert "keeps no notifications" not in caplog.text


def test_a_contract_test_class_without_a_url_is_refused_when_defined():
    with pytest.raises(TypeError, match="must set url"):

        class TestForgotTheURL(DriverContract):
            pass


def test_mixins_and_helpers_without_a_url_may_be_defined():
    class ExtraCases(DriverContract):  # not a test class: no url needed yet
        pass

    class TestWithURL(ExtraCases):
        url = "fake://"

    assert TestWithURL.url == "fake://"
