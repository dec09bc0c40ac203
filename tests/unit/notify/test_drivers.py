"""The notifier drivers: messaging (1.0), messagingv2, log, test, noop."""

from __future__ import annotations

import json
import logging

import rpcframe
from rpcframe import identity, wire
from rpcframe.notify import drivers

from .conftest import take


def test_messagingv2_sends_an_enveloped_body_to_each_topic_and_priority(transport, topic):
    other = topic + "_b"
    notifier = rpcframe.Notifier(transport, "pub", driver="messagingv2", topics=[topic, other])
    notifier.error({"user_id": "u"}, "a.b", {"x": 1})
    for name in (topic, other):
        body = take(transport, name, "error")
        assert json.loads(body)["oslo.version"] == "2.0"
        notification = wire.parse_notification(body)
        assert notification.priority == "error"
        assert notification.message["priority"] == "ERROR"
        assert notification.context == {"user_id": "u"}


def test_messaging_sends_the_bare_message(transport, topic):
    notifier = rpcframe.Notifier(transport, "pub", driver="messaging", topics=[topic])
    notifier.info({}, "a.b", {"x": 1})
    message = json.loads(take(transport, topic))
    assert "oslo.version" not in message
    assert message["event_type"] == "a.b" and message["payload"] == {"x": 1}


def test_the_messaging_drivers_name_the_sender(transport, topic):
    rpcframe.Notifier(transport, "compute.h1", driver="messagingv2", topics=[topic]).info(
        {}, "a.b", {}
    )
    sender = identity.Sender.from_wire(wire.parse_notification(take(transport, topic)).sender)
    assert sender == identity.local_sender("compute.h1")


def test_the_exchange_is_the_control_exchange(conf, transport, topic):
    conf.set_override("control_exchange", "nova")
    rpcframe.Notifier(transport, driver="messagingv2", topics=[topic]).info({}, "a.b", {})
    assert wire.parse_notification(take(transport, topic)).event_type == "a.b"


def test_the_log_driver_logs_json_under_olsos_logger_name(transport, caplog):
    notifier = rpcframe.Notifier(transport, "pub", driver="log")
    with caplog.at_level(logging.DEBUG, logger="oslo.messaging.notification"):
        notifier.warn({}, "volume.attach", {"volume": "v-1", "password": "pw"})
    (record,) = caplog.records
    assert record.name == "oslo.messaging.notification.volume.attach"
    assert record.levelno == logging.WARNING
    logged = json.loads(record.getMessage())
    assert logged["payload"] == {"volume": "v-1", "password": "***"}
    assert logged["priority"] == "WARN"


def test_the_log_driver_logs_audit_at_info_and_skips_samples(transport, caplog):
    notifier = rpcframe.Notifier(transport, "pub", driver="log")
    with caplog.at_level(logging.DEBUG, logger="oslo.messaging.notification"):
        notifier.audit({}, "a.b", {})
        notifier.sample({}, "cpu.util", {"value": 70})
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_the_log_driver_does_no_work_for_a_disabled_level(transport, caplog):
    notifier = rpcframe.Notifier(transport, "pub", driver="log")
    with caplog.at_level(logging.ERROR, logger="oslo.messaging.notification"):
        notifier.debug({}, "a.b", {})
    assert caplog.records == []


def test_the_test_driver_keeps_context_message_priority_and_retry(transport):
    rpcframe.Notifier(transport, "pub", driver="test", retry=2).critical({"u": 1}, "a.b", {"x": 1})
    ((ctxt, message, priority, retry),) = drivers.NOTIFICATIONS
    assert (ctxt, message["payload"], priority, retry) == ({"u": 1}, {"x": 1}, "CRITICAL", 2)


def test_reset_empties_the_same_list(transport):
    kept = drivers.NOTIFICATIONS
    rpcframe.Notifier(transport, driver="test").info({}, "a.b", {})
    drivers.reset()
    assert kept is drivers.NOTIFICATIONS and kept == []


def test_the_noop_driver_sends_nothing(transport, topic):
    rpcframe.Notifier(transport, driver="noop", topics=[topic]).info({}, "a.b", {})
    address_listener = transport._driver.listen(
        [rpcframe.drivers.base.Address("openstack", f"{topic}.info", kind="notify")]
    )
    try:
        assert address_listener.poll(0.05) is None
    finally:
        address_listener.close()
