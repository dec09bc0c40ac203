"""Fixtures for the notification unit tests: a fake:// notification transport."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe.drivers import base
from rpcframe.notify import drivers


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


@pytest.fixture
def transport(conf: cfg.ConfigOpts) -> Iterator[rpcframe.Transport]:
    transport = rpcframe.get_notification_transport(conf, "fake://")
    yield transport
    transport.cleanup()


@pytest.fixture
def topic() -> str:
    return f"notify_{uuid.uuid4().hex[:10]}"


@pytest.fixture(autouse=True)
def _forget_test_driver_notifications() -> Iterator[None]:
    drivers.reset()
    yield
    drivers.reset()


def take(transport: rpcframe.Transport, topic: str, priority: str = "info") -> bytes:
    """The one body waiting on ``<topic>.<priority>`` (fails if there is none)."""
    address = base.Address(transport.conf.control_exchange, f"{topic}.{priority}", kind=base.NOTIFY)
    listener = transport._driver.listen([address])
    try:
        incoming = listener.poll(5.0)
        assert incoming is not None, f"nothing was sent to {topic}.{priority}"
        incoming.ack()
        return incoming.body
    finally:
        listener.close()
