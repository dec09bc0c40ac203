"""The Notifier: priorities, options, prepare, checks on what it is asked to send."""

from __future__ import annotations

import datetime
import logging

import pytest

import rpcframe
from rpcframe import exceptions, wire
from rpcframe.notify import drivers, hooks
from rpcframe.notify import notifier as notify_notifier
from rpcframe.serializer import Serializer

from .conftest import take


def test_each_priority_method_sends_its_priority_in_upper_case(transport):
    notifier = rpcframe.Notifier(transport, "pub", driver="test")
    for method in ("audit", "debug", "info", "warn", "warning", "error", "critical", "sample"):
        getattr(notifier, method)({}, "thing.happened", {"m": method})
    priorities = [priority for _, _, priority, _ in drivers.NOTIFICATIONS]
    assert priorities == ["AUDIT", "DEBUG", "INFO", "WARN", "WARN", "ERROR", "CRITICAL", "SAMPLE"]


def test_the_message_has_oslo_messagings_fields(transport):
    rpcframe.Notifier(transport, "compute.host1", driver="test").info({}, "a.b", {"x": 1})
    _, message, _, _ = drivers.NOTIFICATIONS[0]
    assert list(message) == [
        "message_id",
        "publisher_id",
        "event_type",
        "priority",
        "payload",
        "timestamp",
    ]
    assert message["publisher_id"] == "compute.host1"
    assert message["payload"] == {"x": 1}
    datetime.datetime.strptime(message["timestamp"], "%Y-%m-%d %H:%M:%S.%f")


def test_message_ids_are_distinct_uuids(transport):
    notifier = rpcframe.Notifier(transport, "pub", driver="test")
    for _ in range(3):
        notifier.info({}, "a.b", {})
    ids = [message["message_id"] for _, message, _, _ in drivers.NOTIFICATIONS]
    assert len(set(ids)) == 3
    assert all(len(i) == 36 and i.count("-") == 4 for i in ids)


def test_drivers_and_topics_come_from_the_configuration(conf, transport, topic):
    conf.set_override("driver", ["messagingv2", "test"], group="oslo_messaging_notifications")
    conf.set_override("topics", [topic], group="oslo_messaging_notifications")
    rpcframe.Notifier(transport, "pub").info({}, "a.b", {"x": 1})
    assert len(drivers.NOTIFICATIONS) == 1
    assert wire.parse_notification(take(transport, topic)).payload == {"x": 1}


def test_retry_comes_from_the_configuration_unless_given(conf, transport):
    conf.set_override("retry", 3, group="oslo_messaging_notifications")
    rpcframe.Notifier(transport, driver="test").info({}, "a.b", {})
    rpcframe.Notifier(transport, driver="test", retry=0).info({}, "a.b", {})
    assert [retry for *_, retry in drivers.NOTIFICATIONS] == [3, 0]


def test_without_a_driver_nothing_is_sent_and_nothing_fails(transport):
    notifier = rpcframe.Notifier(transport, "pub")
    notifier.info({}, "a.b", {})
    assert drivers.NOTIFICATIONS == []


def test_an_unknown_driver_is_a_clear_error(transport):
    with pytest.raises(exceptions.ConfigurationError, match=r"'nosuch'.*known: .*messagingv2"):
        rpcframe.Notifier(transport, driver="nosuch")


def test_prepare_changes_the_publisher_and_shares_the_drivers(transport):
    notifier = rpcframe.Notifier(transport, "first", driver="test", retry=1)
    prepared = notifier.prepare(publisher_id="second")
    prepared.info({}, "a.b", {})
    notifier.info({}, "a.b", {})
    publishers = [message["publisher_id"] for _, message, _, _ in drivers.NOTIFICATIONS]
    assert publishers == ["second", "first"]
    assert prepared._drivers is notifier._drivers
    assert prepared.retry == 1
    assert notifier.prepare(retry=5).retry == 5


def test_only_a_noop_driver_makes_the_notifier_disabled(transport):
    assert not rpcframe.Notifier(transport, driver="noop").is_enabled()
    assert rpcframe.Notifier(transport, driver="test").is_enabled()


def test_the_serializer_converts_the_payload(transport):
    class Upper(Serializer):
        def serialize_entity(self, ctxt, entity):
            return {k: v.upper() for k, v in entity.items()}

        def deserialize_entity(self, ctxt, entity):
            return entity

        def serialize_context(self, ctxt):
            return ctxt

        def deserialize_context(self, ctxt):
            return ctxt

    rpcframe.Notifier(transport, driver="test", serializer=Upper()).info({}, "a.b", {"k": "v"})
    assert drivers.NOTIFICATIONS[0][1]["payload"] == {"k": "V"}


def test_a_string_topic_is_one_topic(transport, topic):
    rpcframe.Notifier(transport, driver="messagingv2", topics=topic).info({}, "a.b", {})
    assert wire.parse_notification(take(transport, topic)).event_type == "a.b"


def test_an_rpc_transport_works_with_a_warning(conf, caplog):
    with rpcframe.get_rpc_transport(conf, "fake://") as rpc_transport:
        with caplog.at_level(logging.WARNING):
            rpcframe.Notifier(rpc_transport, driver="test").info({}, "a.b", {})
    assert "get_notification_transport" in caplog.text
    assert len(drivers.NOTIFICATIONS) == 1


def test_the_module_path_oslo_users_import_has_the_notifier():
    assert notify_notifier.Notifier is rpcframe.Notifier
    assert notify_notifier.get_notification_transport is rpcframe.get_notification_transport


# -- what the notifier refuses -----------------------------------------------------------


@pytest.mark.parametrize("event_type", ["", "   ", None, 42])
def test_an_empty_or_missing_event_type_is_refused(transport, event_type):
    with pytest.raises(exceptions.InvalidNotification, match="event_type must be"):
        rpcframe.Notifier(transport, driver="test").info({}, event_type, {})
    assert drivers.NOTIFICATIONS == []


def test_an_unknown_priority_is_refused(transport):
    with pytest.raises(exceptions.InvalidNotification, match="unknown notification priority"):
        rpcframe.Notifier(transport, driver="test")._notify({}, "a.b", {}, "loud")


def test_a_lower_case_priority_is_accepted_as_oslos_cli_sends_it(transport):
    rpcframe.Notifier(transport, driver="test")._notify({}, "a.b", {}, "info")
    assert drivers.NOTIFICATIONS[0][2] == "INFO"


def test_a_payload_json_cannot_hold_is_refused_before_anything_is_sent(transport):
    with pytest.raises(exceptions.InvalidNotification, match=r"payload of 'a\.b' cannot be sent"):
        rpcframe.Notifier(transport, driver="test").info({}, "a.b", {"lock": object()})
    assert drivers.NOTIFICATIONS == []


def test_a_context_json_cannot_hold_is_refused(transport):
    with pytest.raises(exceptions.InvalidNotification, match=r"context of 'a\.b'"):
        rpcframe.Notifier(transport, driver="test").info({"when": object()}, "a.b", {})


def test_values_the_wire_converts_are_accepted(transport, topic):
    when = datetime.datetime(2024, 5, 1, 12, 0, 0)
    rpcframe.Notifier(transport, driver="messagingv2", topics=[topic]).info(
        {}, "a.b", {"when": when, "tags": ("x", "y")}
    )
    payload = wire.parse_notification(take(transport, topic)).payload
    assert payload == {"when": "2024-05-01T12:00:00.000000", "tags": ["x", "y"]}


# -- failures while sending --------------------------------------------------------------


class _Broken(drivers.Driver):
    def notify(self, ctxt, message, priority, retry):
        raise exceptions.MessageDeliveryFailure("the broker is gone")


def _notifier_with(transport, *named_drivers):
    notifier = rpcframe.Notifier(transport, "pub")
    notifier._drivers = tuple(named_drivers)
    return notifier


def test_a_driver_failure_is_logged_not_raised_and_other_drivers_still_send(transport, caplog):
    broken = _Broken(transport.conf, [], transport)
    working = drivers.TestDriver(transport.conf, [], transport)
    notifier = _notifier_with(transport, ("broken", broken), ("test", working))
    with caplog.at_level(logging.ERROR):
        notifier.info({}, "a.b", {})
    assert "through the broken driver" in caplog.text
    assert len(drivers.NOTIFICATIONS) == 1


def test_a_failed_publish_is_reported_to_the_hook_with_the_error(transport):
    notifier = _notifier_with(transport, ("broken", _Broken(transport.conf, [], transport)))
    seen = []
    with hooks.publish_failed.connected(seen.append), hooks.after_publish.connected(seen.append):
        notifier.info({}, "a.b", {})
    assert len(seen) == 1
    assert isinstance(seen[0].errors["broken"], exceptions.MessageDeliveryFailure)


def test_a_messaging_driver_that_cannot_send_reports_a_failure(conf, caplog):
    transport = rpcframe.get_notification_transport(conf, "fake://")
    notifier = rpcframe.Notifier(transport, driver="messagingv2", topics=["t"])
    transport.cleanup()
    failures = []
    with hooks.publish_failed.connected(failures.append), caplog.at_level(logging.ERROR):
        notifier.info({}, "a.b", {})
    assert isinstance(failures[0].errors["messagingv2"], exceptions.TransportDriverError)


def test_the_payload_reaches_the_wire_unchanged(transport, topic):
    payload = {"text": "naïve ☃", "n": [1, 2.5, None, True]}
    rpcframe.Notifier(transport, driver="messagingv2", topics=[topic]).info({}, "a.b", payload)
    assert wire.parse_notification(take(transport, topic)).payload == payload
