"""A RabbitMQ listener's window: when it moves, and which listeners have one.

No broker: a consumer that is not connected yet only keeps the window its
next connection starts with.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from oslo_config import cfg

from rpcframe import opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp import driver as driver_module
from rpcframe.drivers.amqp.consumer import MAX_WINDOW, Consumer
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.transport import TransportURL


def _driver(**overrides: object) -> RabbitDriver:
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    for name, value in overrides.items():
        conf.set_override(name, value, group=opts.RABBIT_GROUP)
    return RabbitDriver(conf, TransportURL.parse(conf, "rabbit://guest:guest@127.0.0.1:1/"))


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    driver = _driver()
    queues = driver.topology.subscriptions([base.Address("x", "t", "s")], None)
    consumer = Consumer(driver.settings, queues, "unit", window=64)
    yield consumer
    consumer.shutdown()


def test_the_window_moves_only_when_it_halves_or_doubles(consumer):
    moves = []
    for free in (63, 40, 32, 20, 16, 9, 8, 0, 1, 2, 3, 4, 100):
        consumer.window(free)
        moves.append(consumer._window)
    assert moves == [64, 64, 32, 32, 16, 16, 8, 1, 1, 2, 2, 4, 100]


def test_a_listener_with_no_free_worker_keeps_a_window_of_one(consumer):
    consumer.window(0)
    assert consumer._window == 1  # RabbitMQ's smallest: 0 would mean no limit


def test_messages_handed_out_unsettled_are_part_of_the_window(consumer):
    consumer._outstanding.update({object(), object(), object()})
    consumer.window(0)
    assert consumer._window == 3


def test_no_bound_and_a_huge_one_fit_basic_qos(consumer):
    consumer.window(None)
    assert consumer._window == 0
    consumer.window(10**6)
    assert consumer._window == MAX_WINDOW


def test_listeners_of_classic_queues_have_a_window():
    queues = _driver().topology.subscriptions([base.Address("x", "t", "s")], None)
    assert driver_module._windowable(queues)


@pytest.mark.parametrize("option", ["rabbit_quorum_queue", "rabbit_transient_quorum_queue"])
def test_listeners_of_quorum_queues_have_none(option):
    # RabbitMQ refuses to consume a quorum queue on a channel with a
    # channel-wide limit.
    queues = _driver(**{option: True}).topology.subscriptions(
        [base.Address("x", "t", "s"), base.Address("x", "t", fanout=True)], None
    )
    assert not driver_module._windowable(queues)


def test_reply_inboxes_have_no_window():
    driver = _driver()
    inbox = Consumer(
        driver.settings, [driver.topology.reply_queue()], "unit", window=64, no_ack=True
    )
    try:
        inbox.window(0)
        assert not inbox._windowed
    finally:
        inbox.shutdown()
