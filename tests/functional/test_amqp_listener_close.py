"""A RabbitMQ listener that closes deletes its private queues, whatever its workers do.

A server's fanout queue is its own (no other listener reads it) and is not
auto-delete: the listener deletes it when it closes. A worker that settles
the listener's last message while the listener is closing must not drop
the connection under that deletion; the link's hand-off hook
(``link._HOOK``) settles the message at exactly that moment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe.drivers import base
from rpcframe.drivers.amqp import link as link_module
from tests import brokers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

EXCHANGE = "openstack"


@pytest.fixture
def topic() -> Iterator[str]:
    yield from brokers.fresh_topic("close")


@pytest.fixture
def driver() -> Iterator[base.Driver]:
    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, brokers.RABBIT_URL)
    yield transport._driver
    transport.cleanup()


def _fanout_queues(topic: str) -> list[str]:
    return sorted(name for name in brokers.queue_properties([topic]) if "_fanout_" in name)


def test_settling_the_last_message_while_the_listener_closes_still_deletes_its_fanout_queue(
    topic, driver, monkeypatch
):
    listener = driver.listen(
        [
            base.Address(EXCHANGE, topic),
            base.Address(EXCHANGE, topic, server="s1"),
            base.Address(EXCHANGE, topic, fanout=True),
        ]
    )
    closing: list[threading.Thread] = []
    settled = threading.Event()
    try:
        assert len(_fanout_queues(topic)) == 1
        driver.send(base.Address(EXCHANGE, topic, server="s1"), b'{"method": "m"}')
        message = listener.poll(10)
        assert message is not None

        def hook(point: str) -> None:
            # The closing thread holds the connection to unsubscribe: a
            # worker settles the last message now.
            if point == "exclusive.taken" and closing and threading.current_thread() is closing[0]:
                worker = threading.Thread(target=message.ack, name="close-test-worker")
                worker.start()
                worker.join(10)
                settled.set()

        monkeypatch.setattr(link_module, "_HOOK", hook)
        thread = threading.Thread(target=listener.close, name="close-test-closer")
        closing.append(thread)
        thread.start()
        thread.join(20)
        assert not thread.is_alive(), "closing the listener hangs"
        assert settled.is_set(), "the message was never settled during the close"
    finally:
        monkeypatch.setattr(link_module, "_HOOK", None)
        listener.cleanup()
    assert _fanout_queues(topic) == []
