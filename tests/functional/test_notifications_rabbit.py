"""Notifications on RabbitMQ between rpcframe and oslo.messaging, both ways.

rpcframe's Notifier and listeners run here; oslo.messaging's run in
``oslo_peer.py`` in another process. Each test uses its own exchange and
topic and removes its queues afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from tests import brokers
from tests.functional import peers

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

WAIT = 30.0


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"notify_x{tag}", f"notify_{tag}"
    yield exchange, topic
    brokers.delete_queues(prefixes=(topic, f"pool_{tag}"))
    brokers.delete_exchanges([exchange])


@pytest.fixture
def transport(names: tuple[str, str]) -> Iterator[rpcframe.Transport]:
    exchange, _ = names
    conf = brokers.conf_for_exchange(exchange)
    transport = rpcframe.get_notification_transport(conf, brokers.RABBIT_URL)
    yield transport
    transport.cleanup()


class Collector:
    """A notification endpoint that keeps what it gets and signals the count."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.got: list[dict[str, Any]] = []
        self.done = threading.Event()
        self._lock = threading.Lock()

    def _keep(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        with self._lock:
            self.got.append(
                {
                    "priority": priority,
                    "ctxt": ctxt,
                    "publisher_id": publisher_id,
                    "event_type": event_type,
                    "payload": payload,
                    "metadata": metadata,
                }
            )
            if len(self.got) >= self.expected:
                self.done.set()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("info", ctxt, publisher_id, event_type, payload, metadata)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("error", ctxt, publisher_id, event_type, payload, metadata)


def test_rpcframe_notifications_reach_an_oslo_listener(names, transport):
    exchange, topic = names
    notifier = rpcframe.Notifier(
        transport, publisher_id="compute.rf-host", driver="messagingv2", topics=[topic]
    )
    ctxt = {"user_id": "rf-user", "project_id": "rf-project", "auth_token": "s3cr3t"}
    notifier.info(ctxt, "compute.instance.create.end", {"instance_id": "i-1"})
    notifier.error(ctxt, "compute.instance.create.error", {"instance_id": "i-2"})

    got = peers.run_oslo("listen", brokers.RABBIT_URL, exchange, topic, "2")

    by_priority = {n["priority"]: n for n in got}
    assert set(by_priority) == {"info", "error"}
    info = by_priority["info"]
    assert info["publisher_id"] == "compute.rf-host"
    assert info["event_type"] == "compute.instance.create.end"
    assert info["payload"] == {"instance_id": "i-1"}
    assert info["ctxt"]["user_id"] == "rf-user"
    assert info["ctxt"]["project_id"] == "rf-project"
    assert "auth_token" not in info["ctxt"], "a secret left the process"


def test_version_1_notifications_reach_an_oslo_listener(names, transport):
    exchange, topic = names
    notifier = rpcframe.Notifier(
        transport, publisher_id="old.publisher", driver="messaging", topics=[topic]
    )
    notifier.info({"user_id": "u"}, "legacy.event", {"v": 1})

    got = peers.run_oslo("listen", brokers.RABBIT_URL, exchange, topic, "1")

    assert [(n["event_type"], n["payload"], n["publisher_id"]) for n in got] == [
        ("legacy.event", {"v": 1}, "old.publisher")
    ]


def test_oslo_notifications_reach_an_rpcframe_listener(names, transport):
    exchange, topic = names
    collector = Collector(expected=2)
    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic=topic, exchange=exchange)], [collector]
    )
    listener.start()
    try:
        assert peers.run_oslo("notify", brokers.RABBIT_URL, exchange, topic) == "sent"
        assert collector.done.wait(WAIT)
    finally:
        listener.stop()
        listener.wait()
    by_priority = {n["priority"]: n for n in collector.got}
    info = by_priority["info"]
    assert info["publisher_id"] == "oslo.peer"
    assert info["event_type"] == "peer.info"
    assert info["payload"] == {"n": 1}
    assert info["ctxt"]["user"] == "oslo-user"
    assert info["metadata"]["message_id"]
    assert info["metadata"]["timestamp"]
    assert info["metadata"].sender is None  # oslo.messaging does not say who it is
    assert by_priority["error"]["payload"] == {"n": 2}


def test_oslo_notifications_sent_while_no_listener_runs_are_kept(names, transport):
    exchange, topic = names
    # The queue exists from the first send: nothing is lost before a listener starts.
    assert peers.run_oslo("notify", brokers.RABBIT_URL, exchange, topic) == "sent"
    collector = Collector(expected=2)
    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic=topic, exchange=exchange)], [collector]
    )
    listener.start()
    try:
        assert collector.done.wait(WAIT)
    finally:
        listener.stop()
        listener.wait()
    assert sorted(n["event_type"] for n in collector.got) == ["peer.error", "peer.info"]


class Member:
    """One pool member's endpoint: records into the shared collector under its name."""

    def __init__(self, name: str, shared: Collector) -> None:
        self.name = name
        self.shared = shared

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.shared.info(ctxt, self.name, event_type, payload, metadata)


def test_rpcframe_listeners_in_a_pool_share_the_notifications(names, transport):
    _, topic = names
    pool = f"pool_{topic.split('_')[-1]}"
    pooled = Collector(expected=20)
    everyone = Collector(expected=20)
    listeners = [
        rpcframe.get_notification_listener(
            transport, [rpcframe.Target(topic=topic)], [Member(name, pooled)], pool=pool
        )
        for name in ("member-1", "member-2")
    ]
    listeners.append(
        rpcframe.get_notification_listener(transport, [rpcframe.Target(topic=topic)], [everyone])
    )
    for listener in listeners:
        listener.start()
    try:
        notifier = rpcframe.Notifier(transport, "pool.test", driver="messagingv2", topics=[topic])
        for i in range(20):
            notifier.info({}, "pooled.event", {"i": i})
        assert everyone.done.wait(WAIT)
        assert pooled.done.wait(WAIT)
    finally:
        for listener in listeners:
            listener.stop()
            listener.wait()
    assert sorted(n["payload"]["i"] for n in pooled.got) == list(range(20))
    assert {n["publisher_id"] for n in pooled.got} == {"member-1", "member-2"}
    assert sorted(n["payload"]["i"] for n in everyone.got) == list(range(20))
