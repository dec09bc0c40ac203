"""Contract cases for the raw driver interface of :mod:`rpcframe.drivers.base`.

Addresses, round-robin, fanout, inboxes, ack/requeue, pools, close, expiry and
``mandatory``, exercised on a driver the suite loads itself. Mixed into
:class:`rpcframe.testing.contract.DriverContract`, which supplies the
fixtures (``driver``, ``transport``, ``topic``, ``conf``) and helpers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from oslo_config import cfg

from rpcframe import exceptions
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.testing.contract_notify import WAIT

__all__ = ["DriverInterfaceContract"]


class DriverInterfaceContract:
    """What a driver does when called directly, below the core."""

    require: Any
    url: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("Test") and not isinstance(getattr(cls, "url", None), str):
            raise TypeError(
                f"{cls.__name__} must set url, the transport URL of the driver under test "
                '(e.g. url = "mydriver://localhost/")'
            )

    @pytest.fixture
    def conf(self) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        conf([])
        return conf

    def test_a_listener_receives_what_is_sent_to_its_topic(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"hello")
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"hello"
            incoming.ack()
        finally:
            listener.close()

    def test_bodies_travel_byte_for_byte(self, driver, topic):
        body = bytes(range(256)) * 4 + b"\x00end"
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), body)
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == body
            incoming.ack()
        finally:
            listener.close()

    def test_topic_messages_are_shared_between_listeners(self, driver, topic):
        address = base.Address("contract", topic)
        first, second = driver.listen([address]), driver.listen([address])
        try:
            for i in range(20):
                driver.send(address, str(i).encode())
            got: dict[str, list[bytes]] = {"first": [], "second": []}
            deadline = time.monotonic() + WAIT
            while len(got["first"]) + len(got["second"]) < 20 and time.monotonic() < deadline:
                for name, listener in (("first", first), ("second", second)):
                    incoming = listener.poll(0.05)
                    if incoming is not None:
                        got[name].append(incoming.body)
                        incoming.ack()
            everything = sorted(got["first"] + got["second"], key=int)
            assert everything == [str(i).encode() for i in range(20)]
            assert got["first"] and got["second"], "one listener got every message"
        finally:
            first.close()
            second.close()

    def test_a_server_address_reaches_only_that_server(self, driver, topic):
        one = driver.listen([base.Address("contract", topic, server="one")])
        two = driver.listen([base.Address("contract", topic, server="two")])
        try:
            driver.send(base.Address("contract", topic, server="two"), b"for two")
            incoming = two.poll(WAIT)
            assert incoming is not None and incoming.body == b"for two"
            incoming.ack()
            assert one.poll(0.2) is None
        finally:
            one.close()
            two.close()

    def test_fanout_reaches_every_listener(self, driver, topic):
        self.require(driver, "fanout")
        address = base.Address("contract", topic, fanout=True)
        listeners = [driver.listen([address]) for _ in range(3)]
        try:
            driver.send(address, b"everyone")
            for listener in listeners:
                incoming = listener.poll(WAIT)
                assert incoming is not None and incoming.body == b"everyone"
                incoming.ack()
        finally:
            for listener in listeners:
                listener.close()

    def test_poll_returns_none_when_nothing_arrives(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            started = time.monotonic()
            assert listener.poll(0.1) is None
            assert time.monotonic() - started < WAIT
        finally:
            listener.close()

    def test_close_wakes_a_blocked_poll(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        result: list[Any] = []
        polling = threading.Thread(target=lambda: result.append(listener.poll(None)))
        polling.start()
        listener.close()
        polling.join(WAIT)
        assert not polling.is_alive(), "close() did not wake poll()"
        assert result == [None]

    def test_concurrent_pollers_each_get_their_own_messages_and_close_wakes_all(
        self, driver, topic
    ):
        self.require(driver, "concurrent_poll")
        address = base.Address("contract", topic)
        listener = driver.listen([address])
        got: list[Any] = []
        changed = threading.Condition()

        def poll_twice() -> None:
            for _ in range(2):
                incoming = listener.poll(None)
                if incoming is not None:
                    incoming.ack()
                with changed:
                    got.append(incoming and incoming.body)
                    changed.notify_all()

        pollers = [threading.Thread(target=poll_twice) for _ in range(3)]
        for poller in pollers:
            poller.start()
        for i in range(3):
            driver.send(address, str(i).encode())
        with changed:
            assert changed.wait_for(lambda: len(got) == 3, WAIT)
        listener.close()
        for poller in pollers:
            poller.join(WAIT)
        assert not any(poller.is_alive() for poller in pollers), "close() left a poller blocked"
        assert sorted(b for b in got if b is not None) == [b"0", b"1", b"2"]
        assert got.count(None) == 3

    def test_close_is_safe_twice_and_poll_after_close_returns_none(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        listener.close()
        listener.close()
        assert listener.poll(0.01) is None

    def test_a_message_is_settled_once(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"once")
            incoming = listener.poll(WAIT)
            assert incoming is not None
            incoming.ack()
            with pytest.raises(exceptions.MessageStateError):
                incoming.ack()
            with pytest.raises(exceptions.MessageStateError):
                incoming.requeue()
        finally:
            listener.close()

    def test_a_requeued_message_is_delivered_again(self, driver, topic):
        self.require(driver, "requeue")
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"again")
            first = listener.poll(WAIT)
            assert first is not None
            first.requeue()
            second = listener.poll(WAIT)
            assert second is not None and second.body == b"again"
            second.ack()
        finally:
            listener.close()

    def test_messages_not_taken_by_a_closed_listener_go_to_the_next(self, driver, topic):
        self.require(driver, "store_and_forward")
        address = base.Address("contract", topic)
        first = driver.listen([address])
        for i in range(5):
            driver.send(address, str(i).encode())
        taken = first.poll(WAIT)
        assert taken is not None
        taken.ack()
        first.close()
        second = driver.listen([address])
        try:
            rest = []
            for _ in range(4):
                incoming = second.poll(WAIT)
                assert incoming is not None
                rest.append(incoming.body)
                incoming.ack()
            assert sorted([*rest, taken.body]) == [str(i).encode() for i in range(5)]
        finally:
            second.close()

    def test_notifications_wait_for_a_listener(self, driver, topic):
        self.require(driver, "durable_notifications")
        address = base.Address("contract", f"{topic}.info", kind=base.NOTIFY)
        driver.send(address, b"stored")
        listener = driver.listen([address])
        try:
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"stored"
            incoming.ack()
        finally:
            listener.close()

    def test_a_pool_shares_one_queue_and_pools_each_get_everything(self, driver, topic):
        self.require(driver, "pools")
        address = base.Address("contract", f"{topic}.info", kind=base.NOTIFY)
        pool_a = [driver.listen([address], pool=f"{topic}-a") for _ in range(2)]
        pool_b = driver.listen([address], pool=f"{topic}-b")
        try:
            for i in range(10):
                driver.send(address, str(i).encode())
            received_a: list[bytes] = []
            deadline = time.monotonic() + WAIT
            while len(received_a) < 10 and time.monotonic() < deadline:
                for listener in pool_a:
                    incoming = listener.poll(0.05)
                    if incoming is not None:
                        received_a.append(incoming.body)
                        incoming.ack()
            received_b = []
            for _ in range(10):
                incoming = pool_b.poll(WAIT)
                assert incoming is not None
                received_b.append(incoming.body)
                incoming.ack()
            expected = [str(i).encode() for i in range(10)]
            assert sorted(received_a, key=int) == expected
            assert sorted(received_b, key=int) == expected
        finally:
            for listener in [*pool_a, pool_b]:
                listener.close()

    def test_inboxes_have_distinct_addresses_and_receive_replies(self, driver):
        first, second = driver.open_inbox(), driver.open_inbox()
        try:
            assert first.address != second.address
            assert first.address.kind == base.REPLY
            driver.send(second.address, b"reply", mandatory=True)
            incoming = second.poll(WAIT)
            assert incoming is not None and incoming.body == b"reply"
            incoming.ack()
            assert first.poll(0.1) is None
        finally:
            first.close()
            second.close()

    def test_mandatory_send_to_a_closed_inbox_is_undeliverable(self, driver):
        self.require(driver, "mandatory")
        inbox = driver.open_inbox()
        inbox.close()
        with pytest.raises(exceptions.MessageUndeliverable):
            driver.send(inbox.address, b"nobody", mandatory=True)

    def test_mandatory_send_to_an_unknown_topic_is_undeliverable(self, driver, topic):
        self.require(driver, "mandatory")
        with pytest.raises(exceptions.MessageUndeliverable):
            driver.send(base.Address("contract", topic), b"nobody", mandatory=True)

    def test_an_expired_message_is_not_delivered(self, driver, topic):
        self.require(driver, "store_and_forward")
        address = base.Address("contract", topic)
        driver.listen([address]).close()  # the queue exists, with no consumer
        driver.send(address, b"stale", expiry=0.05)
        driver.send(address, b"fresh")
        time.sleep(0.2)  # lets the TTL pass: the behaviour under test, not synchronisation
        listener = driver.listen([address])
        try:
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"fresh"
            incoming.ack()
        finally:
            listener.close()

    def new_driver(self, conf: Any) -> Any:
        """A driver of the suite's URL, apart from the ``driver`` fixture's."""
        return msg_transport.load_driver(conf, self.url)

    def test_a_closed_driver_refuses_to_send(self, conf):
        driver = self.new_driver(conf)
        driver.close()
        with pytest.raises(exceptions.TransportClosed):
            driver.send(base.Address("contract", "x"), b"late")
