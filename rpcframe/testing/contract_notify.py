"""The notification half of the driver contract suite.

:class:`NotificationContract` is a base of
:class:`~rpcframe.testing.contract.DriverContract`, so every driver runs these
cases: notifiers and listeners through the whole stack (priorities, pools,
requeue by result and by exception, endpoint failures, batches, filters,
schemas, halting, malformed bodies, both oslo.messaging message formats).
Cases needing a capability the driver lacks are skipped by capability.

Each case waits on events with a timeout. Where a case must show that a
message was *not* redelivered, it stops the listener (so every message it
took is settled) and then checks the queue is empty with a short poll, the
same negative check the RPC cases use.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import exceptions, wire
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.notify import schemas

__all__ = ["NotificationContract"]

WAIT = 10.0  # generous bound for anything that should happen "soon"
QUIET = 0.3  # how long an empty queue must stay empty to count as empty


class _Recorder:
    """A notification endpoint for every priority, with a pluggable reaction.

    ``react(priority, event_type, payload)`` may return a result or raise;
    each call is recorded first. ``until(n)`` waits for n calls in all.
    """

    def __init__(
        self,
        react: Callable[[str, str, Any], Any] | None = None,
        cond: threading.Condition | None = None,
    ) -> None:
        self.calls: list[tuple[str, Any, Any, str, Any, Any]] = []
        self.react = react
        self._cond = cond or threading.Condition()

    def _handle(
        self,
        priority: str,
        ctxt: Any,
        publisher_id: Any,
        event_type: str,
        payload: Any,
        metadata: Any,
    ) -> Any:
        with self._cond:
            self.calls.append((priority, ctxt, publisher_id, event_type, payload, metadata))
            self._cond.notify_all()
        if self.react is not None:
            return self.react(priority, event_type, payload)
        return None

    def until(self, count: int) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.calls) >= count, WAIT)

    def payloads(self) -> list[Any]:
        with self._cond:
            return [call[4] for call in self.calls]

    def info(self, *args: Any) -> Any:
        return self._handle("info", *args)

    def error(self, *args: Any) -> Any:
        return self._handle("error", *args)


class _BatchRecorder:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self._cond = threading.Condition()

    def info(self, messages: list[dict[str, Any]]) -> None:
        with self._cond:
            self.batches.append(messages)
            self._cond.notify_all()

    def until_total(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: sum(len(b) for b in self.batches) >= count, timeout)


class NotificationContract:
    """Notification cases; mixed into DriverContract, which supplies ``url``."""

    url: str
    executor: str | None = None

    @pytest.fixture
    def notification_transport(self, conf: cfg.ConfigOpts) -> Iterator[rpcframe.Transport]:
        transport = rpcframe.get_notification_transport(conf, self.url)
        yield transport
        transport.cleanup()

    @pytest.fixture
    def listeners(self, conf: cfg.ConfigOpts) -> Iterator[Any]:
        """Start listeners, each on a transport of its own.

        Closing a listener's own transport hands back whatever it took but
        never settled, so :meth:`finish` followed by
        :meth:`assert_queue_empty` shows that messages were really settled.
        """
        started: list[Any] = []

        def start(
            topic: str,
            endpoints: list[Any],
            batch: bool = False,
            workers: int | None = None,
            **kwargs: Any,
        ) -> Any:
            factory = (
                rpcframe.get_batch_notification_listener
                if batch
                else rpcframe.get_notification_listener
            )
            transport = rpcframe.get_notification_transport(conf, self.url)
            kwargs.setdefault("executor", self.executor)
            try:
                listener = factory(transport, [rpcframe.Target(topic=topic)], endpoints, **kwargs)
                listener.start(override_pool_size=workers)
            except BaseException:
                transport.cleanup()
                raise
            started.append(listener)
            return listener

        yield start
        for listener in started:
            self.finish(listener)

    @staticmethod
    def finish(listener: Any) -> None:
        """Stop the listener, let it settle what it took, close its transport."""
        listener.stop()
        listener.wait()
        listener.transport.cleanup()

    def notifier(self, transport: rpcframe.Transport, topic: str, **kwargs: Any) -> Any:
        kwargs.setdefault("driver", "messagingv2")
        return rpcframe.Notifier(transport, "contract.publisher", topics=[topic], **kwargs)

    @contextlib.contextmanager
    def raw_driver(self, conf: cfg.ConfigOpts) -> Iterator[base.Driver]:
        """A driver of its own on the suite's URL, for sending and receiving raw bodies."""
        driver = msg_transport.load_driver(conf, self.url)
        try:
            yield driver
        finally:
            driver.close()

    def assert_queue_empty(self, transport: rpcframe.Transport, topic: str) -> None:
        address = base.Address(transport.conf.control_exchange, f"{topic}.info", kind=base.NOTIFY)
        with self.raw_driver(transport.conf) as driver:
            listener = driver.listen([address])
            try:
                leftover = listener.poll(QUIET)
                if leftover is not None:
                    leftover.ack()
                assert leftover is None, f"a message was left in the queue: {leftover.body!r:.200}"
            finally:
                listener.close()

    def send_raw(
        self, transport: rpcframe.Transport, address: base.Address, *bodies: bytes
    ) -> None:
        """Send ``bodies`` as they are, past the core's encoding."""
        with self.raw_driver(transport.conf) as driver:
            for body in bodies:
                driver.send(address, body)

    def require_requeue(self, transport: rpcframe.Transport) -> None:
        if not transport.capabilities.requeue:
            pytest.skip("driver lacks the 'requeue' capability")

    # -- delivery ---------------------------------------------------------------------

    def test_a_listener_gets_each_notification_at_its_priority_method(
        self, notification_transport, listeners, topic
    ):
        endpoint = _Recorder()
        listeners(topic, [endpoint])
        notifier = self.notifier(notification_transport, topic)
        notifier.info({"user_id": "u-1"}, "thing.created", {"id": 1})
        notifier.error({"user_id": "u-1"}, "thing.failed", {"id": 2})
        assert endpoint.until(2)
        by_priority = {call[0]: call[1:] for call in endpoint.calls}
        ctxt, publisher_id, event_type, payload, metadata = by_priority["info"]
        assert (ctxt, publisher_id, event_type, payload) == (
            {"user_id": "u-1"},
            "contract.publisher",
            "thing.created",
            {"id": 1},
        )
        assert metadata["message_id"] and metadata["timestamp"]
        assert by_priority["error"][2:4] == ("thing.failed", {"id": 2})

    def test_priorities_no_endpoint_handles_are_not_subscribed(
        self, notification_transport, listeners, topic
    ):
        endpoint = _Recorder()
        listeners(topic, [endpoint])
        notifier = self.notifier(notification_transport, topic)
        notifier.warn({}, "thing.odd", {"id": 1})
        notifier.info({}, "thing.created", {"id": 2})
        assert endpoint.until(1)
        assert endpoint.payloads() == [{"id": 2}]

    def test_the_endpoint_learns_who_sent_the_notification(
        self, notification_transport, listeners, topic
    ):
        endpoint = _Recorder()
        listeners(topic, [endpoint])
        self.notifier(notification_transport, topic).info({}, "thing.created", {})
        assert endpoint.until(1)
        sender = endpoint.calls[0][5].sender
        assert sender.name == "contract.publisher"
        assert sender.pid > 0 and sender.host

    def test_the_unenveloped_messaging_driver_reaches_listeners(
        self, notification_transport, listeners, topic
    ):
        endpoint = _Recorder()
        listeners(topic, [endpoint])
        notifier = self.notifier(notification_transport, topic, driver="messaging")
        notifier.info({"user_id": "u-1"}, "thing.created", {"id": 1})
        assert endpoint.until(1)
        assert endpoint.calls[0][1:5] == (
            {"user_id": "u-1"},
            "contract.publisher",
            "thing.created",
            {"id": 1},
        )

    def test_each_pool_gets_every_notification_once(self, notification_transport, listeners, topic):
        if not notification_transport.capabilities.pools:
            pytest.skip("driver lacks the 'pools' capability")
        shared = threading.Condition()  # one condition for both members of pool a
        pool_a = [_Recorder(cond=shared), _Recorder(cond=shared)]
        pool_b = _Recorder()
        for endpoint in pool_a:
            listeners(topic, [endpoint], pool=f"{topic}-a")
        listeners(topic, [pool_b], pool=f"{topic}-b")
        notifier = self.notifier(notification_transport, topic)
        for i in range(20):
            notifier.info({}, "thing.created", {"i": i})
        assert pool_b.until(20)
        with shared:
            assert shared.wait_for(lambda: sum(len(e.calls) for e in pool_a) >= 20, WAIT)
        everything = sorted(p["i"] for e in pool_a for p in e.payloads())
        assert everything == list(range(20))
        assert sorted(p["i"] for p in pool_b.payloads()) == list(range(20))

    # -- settling ---------------------------------------------------------------------

    @pytest.mark.parametrize(
        "asks",
        ["returning REQUEUE", "raising Requeue", "failing"],
    )
    def test_a_notification_is_redelivered_when_its_endpoint_asks(
        self, notification_transport, listeners, topic, asks
    ):
        self.require_requeue(notification_transport)
        first_time = threading.Event()

        def react(priority: str, event_type: str, payload: Any) -> Any:
            if first_time.is_set():
                return rpcframe.NotificationResult.HANDLED
            first_time.set()
            if asks == "raising Requeue":
                raise exceptions.Requeue()
            if asks == "failing":
                raise RuntimeError("endpoint broke on purpose")
            return rpcframe.NotificationResult.REQUEUE

        endpoint = _Recorder(react)
        listener = listeners(topic, [endpoint], allow_requeue=True)
        self.notifier(notification_transport, topic).info({}, "thing.created", {"n": "a"})
        assert endpoint.until(2)
        self.finish(listener)
        assert endpoint.payloads() == [{"n": "a"}, {"n": "a"}]
        self.assert_queue_empty(notification_transport, topic)

    def test_an_endpoint_failure_is_acked_without_requeue_and_the_listener_goes_on(
        self, notification_transport, listeners, topic
    ):
        def react(priority: str, event_type: str, payload: Any) -> None:
            if payload["n"] == "boom":
                raise RuntimeError("endpoint broke on purpose")

        endpoint = _Recorder(react)
        listener = listeners(topic, [endpoint], workers=1)
        notifier = self.notifier(notification_transport, topic)
        notifier.info({}, "thing.created", {"n": "boom"})
        notifier.info({}, "thing.created", {"n": "ok"})
        assert endpoint.until(2)
        self.finish(listener)
        assert endpoint.payloads() == [{"n": "boom"}, {"n": "ok"}]
        self.assert_queue_empty(notification_transport, topic)

    def test_requeue_without_allow_requeue_acks(self, notification_transport, listeners, topic):
        endpoint = _Recorder(lambda *_: rpcframe.NotificationResult.REQUEUE)
        listener = listeners(topic, [endpoint])
        self.notifier(notification_transport, topic).info({}, "thing.created", {"n": "a"})
        assert endpoint.until(1)
        self.finish(listener)
        assert endpoint.payloads() == [{"n": "a"}]
        self.assert_queue_empty(notification_transport, topic)

    def test_drop_acks_and_later_endpoints_do_not_see_it(
        self, notification_transport, listeners, topic
    ):
        def drop(priority: str, event_type: str, payload: Any) -> None:
            if payload["n"] == "dropped":
                raise exceptions.Drop()

        first, second = _Recorder(drop), _Recorder()
        listener = listeners(topic, [first, second], workers=1, allow_requeue=True)
        notifier = self.notifier(notification_transport, topic)
        notifier.info({}, "thing.created", {"n": "dropped"})
        notifier.error({}, "thing.failed", {"n": "after"})
        assert second.until(1)
        self.finish(listener)
        assert first.payloads() == [{"n": "dropped"}, {"n": "after"}]
        assert second.payloads() == [{"n": "after"}]
        self.assert_queue_empty(notification_transport, topic)

    def test_halt_listener_stops_the_listener_and_acks(
        self, notification_transport, listeners, topic
    ):
        def halt(*_: Any) -> None:
            raise exceptions.HaltListener("enough")

        endpoint = _Recorder(halt)
        listener = listeners(topic, [endpoint], allow_requeue=True)
        self.notifier(notification_transport, topic).info({}, "thing.created", {"n": "a"})
        assert endpoint.until(1)
        _assert_stops(listener)
        self.finish(listener)
        self.assert_queue_empty(notification_transport, topic)

    def test_halt_listener_can_leave_the_message_for_the_next_listener(
        self, notification_transport, listeners, topic
    ):
        self.require_requeue(notification_transport)
        if not notification_transport.capabilities.store_and_forward:
            pytest.skip("driver lacks the 'store_and_forward' capability")

        def halt(*_: Any) -> None:
            raise exceptions.HaltListener("shutting down", requeue=True)

        first = _Recorder(halt)
        listener = listeners(topic, [first], allow_requeue=True)
        self.notifier(notification_transport, topic).info({}, "thing.created", {"n": "a"})
        assert first.until(1)
        _assert_stops(listener)
        second = _Recorder()
        listeners(topic, [second])
        assert second.until(1)
        assert second.payloads() == [{"n": "a"}]

    # -- batches ---------------------------------------------------------------------

    def test_a_batch_listener_groups_205_notifications_as_100_100_5(
        self, notification_transport, listeners, topic
    ):
        endpoint = _BatchRecorder()
        listeners(topic, [endpoint], batch=True, batch_size=100, batch_timeout=1.0)
        notifier = self.notifier(notification_transport, topic)
        for i in range(205):
            notifier.info({}, "thing.created", {"i": i})
        assert endpoint.until_total(205, WAIT)
        assert sorted(len(b) for b in endpoint.batches) == [5, 100, 100], [
            len(b) for b in endpoint.batches
        ]
        received = sorted(m["payload"]["i"] for b in endpoint.batches for m in b)
        assert received == list(range(205))
        assert set(endpoint.batches[0][0]) == {
            "ctxt",
            "publisher_id",
            "event_type",
            "payload",
            "metadata",
        }

    # -- what endpoints are shown -----------------------------------------------------------

    def test_a_filter_shows_an_endpoint_only_what_matches(
        self, notification_transport, listeners, topic
    ):
        class Filtered(_Recorder):
            filter_rule = rpcframe.NotificationFilter(
                event_type=r"^thing\.created$", payload={"state": "^active$"}
            )

        endpoint, everything = Filtered(), _Recorder()
        listeners(topic, [endpoint, everything], workers=1)
        notifier = self.notifier(notification_transport, topic)
        notifier.info({}, "thing.deleted", {"state": "active", "n": 1})
        notifier.info({}, "thing.created", {"state": "paused", "n": 2})
        notifier.info({}, "thing.created", {"state": "active", "n": 3})
        assert everything.until(3)
        assert endpoint.payloads() == [{"state": "active", "n": 3}]

    def test_a_filter_on_publisher_and_context(self, notification_transport, listeners, topic):
        class Filtered(_Recorder):
            filter_rule = rpcframe.NotificationFilter(
                publisher_id=r"^compute\.", context={"project_id": "^p-1$"}
            )

        endpoint, everything = Filtered(), _Recorder()
        listeners(topic, [endpoint, everything], workers=1)
        notifier = self.notifier(notification_transport, topic)
        notifier.prepare(publisher_id="network.h1").info({"project_id": "p-1"}, "x", {"n": 1})
        notifier.prepare(publisher_id="compute.h1").info({"project_id": "p-2"}, "x", {"n": 2})
        notifier.prepare(publisher_id="compute.h1").info({"project_id": "p-1"}, "x", {"n": 3})
        assert everything.until(3)
        assert endpoint.payloads() == [{"n": 3}]

    def test_a_notification_its_schema_refuses_is_acked_and_never_handed_over(
        self, notification_transport, listeners, topic
    ):
        registry = schemas.SchemaRegistry(entry_points=False)
        registry.register(
            "thing.created",
            {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
        )
        endpoint = _Recorder()
        listener = listeners(topic, [endpoint], workers=1, schemas=registry)
        # Sent raw: a Notifier with the same schema would refuse to send it.
        invalid = wire.encode_notification(
            {
                "message_id": wire.new_uuid(),
                "publisher_id": "elsewhere",
                "event_type": "thing.created",
                "priority": "INFO",
                "payload": {"id": "not a number"},
                "timestamp": "2024-01-01 00:00:00.000000",
            },
            {},
        )
        address = base.Address(
            notification_transport.conf.control_exchange, f"{topic}.info", kind=base.NOTIFY
        )
        self.send_raw(notification_transport, address, invalid)
        self.notifier(notification_transport, topic, schemas=registry).info(
            {}, "thing.created", {"id": 7}
        )
        assert endpoint.until(1)
        self.finish(listener)
        assert endpoint.payloads() == [{"id": 7}]
        self.assert_queue_empty(notification_transport, topic)

    def test_malformed_notifications_are_acked_and_the_listener_goes_on(
        self, notification_transport, listeners, topic
    ):
        endpoint = _Recorder()
        listener = listeners(topic, [endpoint], workers=1)
        address = base.Address(
            notification_transport.conf.control_exchange, f"{topic}.info", kind=base.NOTIFY
        )
        self.send_raw(
            notification_transport,
            address,
            b"not json",
            b"\xff\xfe garbage",
            b"[1, 2]",
            wire.encode({"event_type": "no.priority", "payload": {}}),
            wire.encode({"priority": "LOUD", "event_type": "x", "payload": {}}),
            wire.encode({"priority": "INFO", "event_type": 42, "payload": {}}),
            b"[" * 100_000,
            wire.encode({"priority": "INFO", "event_type": "x", "payload": {}}).replace(
                b"{}", b"[" * 100_000
            ),
        )
        self.notifier(notification_transport, topic).info({}, "thing.created", {"n": "ok"})
        assert endpoint.until(1)
        self.finish(listener)
        assert endpoint.payloads() == [{"n": "ok"}]
        self.assert_queue_empty(notification_transport, topic)


def _assert_stops(listener: Any) -> None:
    waiter = threading.Thread(target=listener.wait, name="contract-listener-wait")
    waiter.start()
    waiter.join(WAIT)
    assert not waiter.is_alive(), "HaltListener did not stop the listener"
