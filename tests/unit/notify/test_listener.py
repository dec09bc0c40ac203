"""Building listeners: what is refused, and oslo.messaging's module paths."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

import rpcframe
from rpcframe import exceptions, opts, wire
from rpcframe import transport as msg_transport
from rpcframe.drivers import base, fake
from rpcframe.notify import dispatcher, listener
from rpcframe.notify.schemas import SchemaRegistry
from tests.conftest import logged


class InfoEndpoint:
    def __init__(self) -> None:
        self.got = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.got.set()


class _FakeWithoutRequeueOrPools(fake.FakeDriver):
    capabilities = base.Capabilities(requeue=False, pools=False)


@pytest.fixture
def limited_transport(conf):
    url = msg_transport.TransportURL.parse(conf, "fake://")
    transport = msg_transport.NotificationTransport(_FakeWithoutRequeueOrPools(conf, url))
    yield transport
    transport.cleanup()


def targets(topic="notifications"):
    return [rpcframe.Target(topic=topic)]


def test_requeue_on_a_driver_that_cannot_requeue_fails_when_the_listener_is_built(
    limited_transport,
):
    with pytest.raises(exceptions.ConfigurationError, match="cannot requeue"):
        rpcframe.get_notification_listener(
            limited_transport, targets(), [InfoEndpoint()], allow_requeue=True
        )


def test_a_pool_on_a_driver_without_pools_fails_when_the_listener_is_built(limited_transport):
    with pytest.raises(exceptions.ConfigurationError, match="listener pools"):
        rpcframe.get_batch_notification_listener(
            limited_transport, targets(), [InfoEndpoint()], pool="p", batch_size=10
        )


def test_without_requeue_the_limited_driver_still_listens(limited_transport):
    endpoint = InfoEndpoint()
    server = rpcframe.get_notification_listener(limited_transport, targets(), [endpoint])
    server.start()
    try:
        rpcframe.Notifier(limited_transport, driver="messagingv2").info({}, "a.b", {})
        assert endpoint.got.wait(5)
    finally:
        server.stop()
        server.wait()


@pytest.mark.parametrize(
    ("batch_size", "batch_timeout", "complaint"),
    [
        (0, None, "batch_size must be a positive integer"),
        (-3, 1.0, "batch_size must be a positive integer"),
        ("10", 1.0, "batch_size must be a positive integer"),
        (True, 1.0, "batch_size must be a positive integer"),
        (10, 0, "batch_timeout must be a positive number"),
        (10, "1", "batch_timeout must be a positive number"),
        (None, None, "needs batch_size, batch_timeout or both"),
    ],
)
def test_bad_batch_settings_are_refused(transport, batch_size, batch_timeout, complaint):
    with pytest.raises(ValueError, match=complaint):
        rpcframe.get_batch_notification_listener(
            transport,
            targets(),
            [InfoEndpoint()],
            batch_size=batch_size,
            batch_timeout=batch_timeout,
        )


def test_a_target_without_a_topic_is_refused_when_the_listener_starts(transport):
    listener = rpcframe.get_notification_listener(transport, [rpcframe.Target()], [InfoEndpoint()])
    with pytest.raises(rpcframe.InvalidTarget, match="topic"):
        listener.start()


@pytest.mark.parametrize("bad", [rpcframe.Target(topic="t"), "notifications"])
def test_targets_must_be_a_list_of_targets(transport, bad):
    with pytest.raises(TypeError):
        rpcframe.get_notification_listener(transport, bad, [InfoEndpoint()])


def test_endpoints_without_any_priority_method_build_a_listener_that_says_so(transport, caplog):
    class Nothing:
        def created(self, *args):
            pass

    with caplog.at_level(logging.INFO):
        rpcframe.get_notification_listener(transport, targets(), [Nothing()])
    assert "No endpoint has a method for any notification priority" in caplog.text


def test_an_empty_pool_name_is_refused(transport):
    with pytest.raises(ValueError, match="pool must be"):
        rpcframe.get_notification_listener(transport, targets(), [InfoEndpoint()], pool="")


def test_an_unknown_executor_is_refused(transport):
    with pytest.raises(rpcframe.ExecutorLoadFailure):
        rpcframe.get_notification_listener(
            transport, targets(), [InfoEndpoint()], executor="nosuch"
        )


def test_the_dispatcher_subscribes_only_to_priorities_endpoints_handle():
    class Mixed:
        def error(self, *a):
            pass

        def audit(self, *a):
            pass

        warn = "not a method"

    assert dispatcher.NotificationDispatcher([Mixed()]).supported_priorities == ["audit", "error"]


def test_oslo_messagings_module_paths_exist():
    assert listener.NotificationServer.__name__ == "NotificationServer"
    assert issubclass(listener.BatchNotificationServer, rpcframe.MessageHandlingServer)
    assert dispatcher.NotificationResult.HANDLED == "handled"
    assert dispatcher.NotificationResult.REQUEUE == "requeue"
    assert dispatcher.PRIORITIES == [
        "audit",
        "debug",
        "info",
        "warn",
        "error",
        "critical",
        "sample",
    ]
    assert rpcframe.NotificationResult is dispatcher.NotificationResult


def test_a_listener_thread_is_named_after_its_topic(transport):
    server = rpcframe.get_notification_listener(transport, targets("billing"), [InfoEndpoint()])
    server.start()
    try:
        names = {thread.name for thread in threading.enumerate()}
        assert "rpcframe-notify-billing-worker-1" in names
    finally:
        server.stop()
        server.wait()
    assert "rpcframe-notify-billing-worker-1" not in {t.name for t in threading.enumerate()}


class _BrokenContextSerializer(rpcframe.NoOpSerializer):
    def deserialize_context(self, ctxt):
        if ctxt.get("broken"):
            raise RuntimeError("cannot rebuild this context")
        return ctxt


def test_a_notification_that_cannot_be_dispatched_is_dropped_and_the_listener_goes_on(
    transport, topic
):
    endpoint = InfoEndpoint()
    server = rpcframe.get_notification_listener(
        transport,
        targets(topic),
        [endpoint],
        serializer=_BrokenContextSerializer(),
        allow_requeue=True,
    )
    server.start()
    try:
        with logged("rpcframe.notify.listener", "could not be dispatched") as dropped:
            notifier = rpcframe.Notifier(
                transport, "test.host", driver="messagingv2", topics=[topic]
            )
            notifier.info({"broken": True}, "compute.broken", {})
            notifier.info({}, "compute.fine", {})
            assert endpoint.got.wait(5)
            assert dropped.wait(5)
    finally:
        server.stop()
        server.wait()


class _RecordingIncoming:
    """A received message that records how it was settled."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.settled: list[str] = []

    def ack(self) -> None:
        self.settled.append("ack")

    def requeue(self) -> None:
        self.settled.append("requeue")


class _FailingSchemas(SchemaRegistry):
    def validate(self, event_type, payload):
        raise RuntimeError("a schema check that broke")


def _notification_body(event_type: str) -> bytes:
    message = {"priority": "INFO", "event_type": event_type, "payload": {}, "message_id": "m"}
    return wire.encode_notification(message, {})


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_message_is_settled_even_when_accepting_it_fails_unexpectedly(transport, batch):
    if batch:
        server = rpcframe.get_batch_notification_listener(
            transport, targets(), [InfoEndpoint()], batch_size=2, schemas=_FailingSchemas()
        )
        incoming = [_RecordingIncoming(_notification_body("a")), _RecordingIncoming(b"[1]")]
        work = incoming
    else:
        server = rpcframe.get_notification_listener(
            transport, targets(), [InfoEndpoint()], schemas=_FailingSchemas()
        )
        incoming = [_RecordingIncoming(_notification_body("a"))]
        work = incoming[0]

    with pytest.raises(RuntimeError, match="schema check that broke"):
        server._process_incoming(work)

    assert [message.settled for message in incoming] == [["ack"]] * len(incoming)


@pytest.mark.parametrize("body", [b"[" * 100_000, b"not json"], ids=["deep", "garbage"])
def test_a_malformed_notification_is_acknowledged_once(transport, body):
    server = rpcframe.get_notification_listener(transport, targets(), [InfoEndpoint()])
    incoming = _RecordingIncoming(body)

    server._process_incoming(incoming)

    assert incoming.settled == ["ack"]


class _InOrder:
    def __init__(self, expected: int) -> None:
        self.seen: list[int] = []
        self.expected = expected
        self.done = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.seen.append(payload["n"])
        if len(self.seen) == self.expected:
            self.done.set()


def _zmq_url() -> str:
    pytest.importorskip("zmq")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"zmq://127.0.0.1:{port}/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"


@pytest.mark.parametrize("url", ["fake://", "zmq"])
def test_a_listener_with_one_worker_sees_notifications_in_the_order_they_were_sent(conf, url):
    # Several workers handle notifications side by side (any order); one
    # worker takes them as they were sent.
    opts.register_core(conf)
    conf.set_override("executor_thread_pool_size", 1)
    transport = rpcframe.get_notification_transport(conf, _zmq_url() if url == "zmq" else url)
    endpoint = _InOrder(200)
    server = rpcframe.get_notification_listener(transport, targets("ordered"), [endpoint])
    server.start()
    try:
        notifier = rpcframe.Notifier(transport, driver="messagingv2", topics=["ordered"])
        for n in range(200):
            notifier.info({}, "a.b", {"n": n})
        assert endpoint.done.wait(10)
    finally:
        server.stop()
        server.wait()
        transport.cleanup()
    assert endpoint.seen == list(range(200))
