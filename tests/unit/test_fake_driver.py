"""What the fake driver adds to the contract: broker sharing and lifetime."""

from __future__ import annotations

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe.drivers import base


def new_conf():
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_transports_on_the_same_url_share_one_broker(topic):
    server_side = rpcframe.get_rpc_transport(new_conf(), "fake://")
    client_side = rpcframe.get_rpc_transport(new_conf(), "fake://")
    try:
        address = base.Address("openstack", topic)
        listener = server_side._driver.listen([address])
        client_side._driver.send(address, b"across")
        incoming = listener.poll(5)
        assert incoming is not None and incoming.body == b"across"
        incoming.ack()
    finally:
        client_side.cleanup()
        server_side.cleanup()


def test_different_virtual_hosts_are_separate_brokers(topic):
    one = rpcframe.get_rpc_transport(new_conf(), "fake:///one")
    two = rpcframe.get_rpc_transport(new_conf(), "fake:///two")
    try:
        address = base.Address("openstack", topic)
        listener = one._driver.listen([address])
        two._driver.send(address, b"elsewhere")
        assert listener.poll(0.05) is None
    finally:
        one.cleanup()
        two.cleanup()


def test_the_broker_is_forgotten_when_its_last_transport_closes(topic):
    first = rpcframe.get_rpc_transport(new_conf(), "fake://")
    address = base.Address("openstack", topic)
    first._driver.listen([address]).close()  # declares a queue
    first._driver.send(address, b"left over")
    first.cleanup()
    second = rpcframe.get_rpc_transport(new_conf(), "fake://")
    try:
        listener = second._driver.listen([address])
        assert listener.poll(0.05) is None
    finally:
        second.cleanup()


def test_a_message_polled_but_never_settled_is_requeued_when_the_transport_closes(topic):
    keeper = rpcframe.get_rpc_transport(new_conf(), "fake://")  # keeps the broker alive
    first = rpcframe.get_rpc_transport(new_conf(), "fake://")
    try:
        address = base.Address("openstack", topic)
        listener = first._driver.listen([address])
        first._driver.send(address, b"unsettled")
        assert listener.poll(5) is not None
        first.cleanup()
        again = keeper._driver.listen([address])
        incoming = again.poll(5)
        assert incoming is not None and incoming.body == b"unsettled"
        incoming.ack()
    finally:
        keeper.cleanup()


def test_bodies_must_be_bytes(transport, topic):
    with pytest.raises(TypeError, match="bytes"):
        transport._driver.send(base.Address("openstack", topic), "text")  # type: ignore[arg-type]


def test_reply_addresses_cannot_be_listened_to(transport):
    with pytest.raises(ValueError, match="open_inbox"):
        transport._driver.listen([base.Address("", "reply_x", kind=base.REPLY)])


def test_an_address_needs_a_topic_and_a_known_kind():
    with pytest.raises(ValueError, match="topic"):
        base.Address("openstack", "")
    with pytest.raises(ValueError, match="kind"):
        base.Address("openstack", "t", kind="telepathy")
