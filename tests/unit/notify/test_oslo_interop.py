"""Wire compatibility with oslo.messaging's notifications, both ways.

oslo.messaging's own Notifier produces the messages here: its messaging
drivers run down to the point where the RabbitMQ driver hands the message
to kombu, which we encode with kombu's JSON serializer, exactly as it would
go to the broker. In the other direction, our bodies go through the steps
oslo.messaging's RabbitMQ listener takes (kombu decode, envelope, context,
duplicate check) into its NotificationDispatcher and an endpoint.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

import oslo_messaging
import pytest
from kombu import serialization as kombu_serialization
from oslo_config import cfg
from oslo_context import context as oslo_context
from oslo_messaging._drivers import amqp as oslo_amqp
from oslo_messaging._drivers import amqpdriver as oslo_amqpdriver
from oslo_messaging._drivers import common as oslo_common
from oslo_messaging.notify import dispatcher as oslo_dispatcher

import rpcframe
from rpcframe import wire
from rpcframe.drivers import base

WAIT = 5.0
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")


class _Connection:
    """Stands where oslo's RabbitMQ connection would publish."""

    def __init__(self, sent: list[tuple[str, str, Any]]) -> None:
        self.sent = sent

    def __enter__(self) -> _Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def notify_send(self, exchange: str, topic: str, msg: Any, retry: Any = None, **_: Any) -> None:
        self.sent.append((exchange, topic, msg))


def oslo_sends(driver: str, priority: str, ctxt: Any, event_type: str, payload: Any):
    """What oslo.messaging's Notifier would publish: (exchange, routing key, bytes)."""
    conf = cfg.ConfigOpts()
    conf([])
    amqp = oslo_amqpdriver.AMQPDriverBase.__new__(oslo_amqpdriver.AMQPDriverBase)
    amqp.conf = conf
    amqp._default_exchange = "openstack"
    sent: list[tuple[str, str, Any]] = []
    amqp._get_connection = lambda purpose, retry=None: _Connection(sent)
    transport = oslo_messaging.transport.NotificationTransport(amqp)
    notifier = oslo_messaging.Notifier(
        transport, "compute.host1", driver=driver, topics=["notifications"]
    )
    getattr(notifier, priority)(ctxt, event_type, payload)
    ((exchange, routing_key, msg),) = sent
    _, _, body = kombu_serialization.dumps(msg, serializer="json")
    return exchange, routing_key, body.encode() if isinstance(body, str) else body


def oslo_receives(body: bytes, endpoint: Any) -> Any:
    """Take ``body`` the way oslo.messaging's RabbitMQ notification listener does."""
    raw = kombu_serialization.loads(body, "application/json", "utf-8")
    message = oslo_common.deserialize_msg(raw)
    ctxt = oslo_amqp.unpack_context(message)
    oslo_amqp._MsgIdCache().check_duplicate_message(message)

    class Incoming:
        pass

    incoming = Incoming()
    incoming.ctxt, incoming.message = ctxt.to_dict(), message
    return oslo_dispatcher.NotificationDispatcher([endpoint], None).dispatch(incoming)


class _Endpoint:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.event = threading.Event()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.calls.append((ctxt, publisher_id, event_type, payload, metadata))
        self.event.set()

    warn = error = info


def oslo_context_for_test() -> Any:
    return oslo_context.RequestContext(
        user_id="u-1", project_id="p-1", auth_token="s3cret", request_id="req-1"
    )


def our_body(transport, driver: str, priority: str, ctxt: Any, event_type: str, payload: Any):
    topic = f"interop_{uuid.uuid4().hex[:8]}"
    address = base.Address("openstack", f"{topic}.{priority}", kind=base.NOTIFY)
    tap = transport._driver.listen([address])
    try:
        notifier = rpcframe.Notifier(transport, "compute.host1", driver=driver, topics=[topic])
        getattr(notifier, priority)(ctxt, event_type, payload)
        incoming = tap.poll(WAIT)
        assert incoming is not None
        incoming.ack()
        return incoming.body
    finally:
        tap.close()


# -- oslo.messaging sends, rpcframe receives ---------------------------------------------


@pytest.mark.parametrize("driver", ["messagingv2", "messaging"])
def test_an_oslo_notification_reaches_our_endpoint(transport, driver):
    exchange, routing_key, body = oslo_sends(
        driver, "warn", oslo_context_for_test(), "compute.instance.create.end", {"id": "i-1"}
    )
    assert (exchange, routing_key) == ("openstack", "notifications.warn")
    topic = f"interop_{uuid.uuid4().hex[:8]}"
    endpoint = _Endpoint()
    server = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic=topic)], [endpoint]
    )
    server.start()
    try:
        transport._driver.send(base.Address(exchange, f"{topic}.warn", kind=base.NOTIFY), body)
        assert endpoint.event.wait(WAIT)
    finally:
        server.stop()
        server.wait()
    ((ctxt, publisher_id, event_type, payload, metadata),) = endpoint.calls
    assert (publisher_id, event_type, payload) == (
        "compute.host1",
        "compute.instance.create.end",
        {"id": "i-1"},
    )
    assert ctxt["user"] == "u-1" and ctxt["request_id"] == "req-1"
    assert set(metadata) == {"message_id", "timestamp"}  # no sender: oslo does not say
    uuid.UUID(metadata["message_id"])
    assert TIMESTAMP.match(metadata["timestamp"])


def test_an_oslo_message_parses_to_the_same_fields_as_ours():
    _, _, body = oslo_sends("messagingv2", "info", oslo_context_for_test(), "a.b", [1, 2])
    notification = wire.parse_notification(body)
    assert notification.priority == "info"
    assert notification.payload == [1, 2]
    assert notification.sender is None
    assert re.fullmatch(r"[0-9a-f]{32}", notification.unique_id)


# -- rpcframe sends, oslo.messaging receives ----------------------------------------------


@pytest.mark.parametrize("driver", ["messagingv2", "messaging"])
def test_our_notification_reaches_an_oslo_endpoint(transport, driver):
    ctxt = {"user_id": "u-1", "request_id": "req-1", "auth_token": "s3cret"}
    body = our_body(transport, driver, "error", ctxt, "volume.attach", {"volume": "v-1"})
    endpoint = _Endpoint()
    result = oslo_receives(body, endpoint)
    assert result == oslo_dispatcher.NotificationResult.HANDLED
    ((oslo_ctxt, publisher_id, event_type, payload, metadata),) = endpoint.calls
    assert publisher_id == "compute.host1"
    assert (event_type, payload) == ("volume.attach", {"volume": "v-1"})
    assert oslo_ctxt["user_id"] == "u-1" and oslo_ctxt["request_id"] == "req-1"
    assert "auth_token" not in oslo_ctxt
    assert set(metadata) == {"message_id", "timestamp"}


def test_our_envelope_has_oslos_layout_plus_only_the_sender():
    transport_conf = cfg.ConfigOpts()
    transport_conf([])
    with rpcframe.get_notification_transport(transport_conf, "fake://") as transport:
        ours = our_body(transport, "messagingv2", "info", oslo_context_for_test(), "a.b", {"x": 1})
    _, _, theirs = oslo_sends("messagingv2", "info", oslo_context_for_test(), "a.b", {"x": 1})
    our_outer, their_outer = json.loads(ours), json.loads(theirs)
    assert list(our_outer) == list(their_outer) == ["oslo.version", "oslo.message"]
    assert our_outer["oslo.version"] == their_outer["oslo.version"] == "2.0"
    our_inner = json.loads(our_outer["oslo.message"])
    their_inner = json.loads(their_outer["oslo.message"])
    fields = ["message_id", "publisher_id", "event_type", "priority", "payload", "timestamp"]
    assert list(our_inner)[:6] == list(their_inner)[:6] == fields
    our_plain = {k for k in our_inner if not k.startswith("_context_")}
    their_plain = {k for k in their_inner if not k.startswith("_context_")}
    assert our_plain - their_plain == {wire.SENDER_KEY}
    assert their_plain <= our_plain
    assert our_inner["priority"] == their_inner["priority"] == "INFO"
    assert TIMESTAMP.match(our_inner["timestamp"]) and TIMESTAMP.match(their_inner["timestamp"])
    assert uuid.UUID(our_inner["message_id"]).version == 4
    assert re.fullmatch(r"[0-9a-f]{32}", our_inner["_unique_id"])
    # The context travels as oslo.messaging's _context_ keys, minus secrets.
    assert our_inner["_context_user"] == their_inner["_context_user"] == "u-1"
    assert "_context_auth_token" not in our_inner
    # Byte-level: the same JSON spelling (separators, ASCII escapes).
    assert ours.startswith(b'{"oslo.version": "2.0", "oslo.message": "{\\"message_id\\": \\"')
