"""How a server's replies go out: waiting for the outcome only where an inbox can come back."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.drivers.fake import FakeDriver
from rpcframe.transport import Transport, TransportURL

INBOX = base.Address("", "reply_x", kind=base.REPLY)


class _Recording(FakeDriver):
    def __init__(self, conf: cfg.ConfigOpts, lasting: bool) -> None:
        super().__init__(conf, TransportURL.parse(conf, "fake://"))
        self.capabilities = dataclasses.replace(self.capabilities, lasting_inboxes=lasting)
        self.sent: list[dict[str, Any]] = []

    def send(self, address: base.Address, body: bytes, **kwargs: Any) -> None:
        self.sent.append({"address": address, **kwargs})
        if kwargs.get("mandatory"):
            raise exceptions.MessageUndeliverable(None, "", address.topic, body)


@pytest.fixture
def conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_where_inboxes_come_back_a_reply_is_mandatory_and_its_outcome_is_reported(conf):
    driver = _Recording(conf, lasting=True)
    with pytest.raises(exceptions.MessageUndeliverable):
        Transport(driver)._send_reply(INBOX, b"{}", 5.0)
    assert driver.sent == [{"address": INBOX, "mandatory": True, "timeout": 5.0}]


def test_where_an_inbox_dies_with_its_caller_a_reply_is_written_and_not_waited_for(conf):
    driver = _Recording(conf, lasting=False)
    Transport(driver)._send_reply(INBOX, b"{}", 5.0)
    assert driver.sent == [{"address": INBOX, "timeout": 5.0, "confirm": False}]


@pytest.mark.parametrize("lasting", [True, False])
def test_a_control_message_is_mandatory_on_every_driver(conf, lasting):
    # A stream's credit or a cancel must be known to have arrived.
    driver = _Recording(conf, lasting=lasting)
    with pytest.raises(exceptions.MessageUndeliverable):
        Transport(driver)._send_control("reply_x", "c" * 32, 5.0, credit=4)
    assert [sent["mandatory"] for sent in driver.sent] == [True]
