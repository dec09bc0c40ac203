"""The recorder users put around code to assert what it notified."""

from __future__ import annotations

import pytest

import rpcframe
from rpcframe.notify.testing import NotificationRecorder, record_notifications


@pytest.fixture
def notifier(transport):
    return rpcframe.Notifier(transport, "compute.h1", driver="messagingv2")


def test_it_records_what_the_block_notified(notifier):
    with record_notifications() as recorded:
        notifier.info({"user_id": "u"}, "compute.instance.create", {"id": "i-1"})
        notifier.error({}, "compute.instance.fail", {"id": "i-2"})
    assert recorded.event_types() == ["compute.instance.create", "compute.instance.fail"]
    first = recorded.notifications[0]
    assert (first.priority, first.publisher_id, first.payload, first.context) == (
        "info",
        "compute.h1",
        {"id": "i-1"},
        {"user_id": "u"},
    )


def test_it_records_nothing_outside_the_block(notifier):
    with record_notifications() as recorded:
        pass
    notifier.info({}, "late", {})
    assert recorded.notifications == []


@pytest.mark.parametrize("driver", ["test", "noop", "log", None])
def test_it_works_whatever_the_driver(transport, driver):
    with record_notifications() as recorded:
        rpcframe.Notifier(transport, "p", driver=driver).info({}, "a.b", {})
    recorded.assert_notified("a.b")


def test_assert_notified_matches_priority_publisher_and_payload(notifier):
    with record_notifications() as recorded:
        notifier.info({}, "compute.instance.create", {"id": "i-1", "state": "active"})
    found = recorded.assert_notified(
        "compute.instance.*",
        priority="INFO",
        publisher_id="compute.h1",
        payload_contains={"id": "i-1"},
        count=1,
    )
    assert found.payload["state"] == "active"
    recorded.assert_notified("compute.instance.create", payload={"id": "i-1", "state": "active"})


def test_assert_notified_fails_listing_what_was_recorded(notifier):
    with record_notifications() as recorded:
        notifier.info({}, "compute.instance.create", {"id": "i-1"})
    with pytest.raises(AssertionError, match=r"no notification 'x.y'.*compute.instance.create"):
        recorded.assert_notified("x.y")
    with pytest.raises(AssertionError, match="at error"):
        recorded.assert_notified("compute.instance.create", priority="error")
    with pytest.raises(AssertionError, match="containing"):
        recorded.assert_notified("compute.instance.create", payload_contains={"id": "i-2"})


def test_assert_notified_checks_the_count(notifier):
    with record_notifications() as recorded:
        notifier.info({}, "a.b", {})
        notifier.info({}, "a.b", {})
    recorded.assert_notified("a.b", count=2)
    with pytest.raises(AssertionError, match="expected 1 notification"):
        recorded.assert_notified("a.b", count=1)


def test_assert_not_notified(notifier):
    with record_notifications() as recorded:
        notifier.info({}, "a.b", {})
    recorded.assert_not_notified("c.*")
    recorded.assert_not_notified("a.b", priority="error")
    with pytest.raises(AssertionError, match=r"expected no notification 'a\.b'"):
        recorded.assert_not_notified("a.b")
    with pytest.raises(AssertionError):
        recorded.assert_not_notified()


def test_it_can_record_only_some_event_types_and_publishers(notifier):
    with NotificationRecorder(event_type="compute.*", publisher_id="compute.h1") as recorded:
        notifier.info({}, "compute.a", {})
        notifier.info({}, "network.b", {})
        notifier.prepare(publisher_id="compute.h2").info({}, "compute.c", {})
    assert recorded.event_types() == ["compute.a"]


def test_clear_forgets_what_was_recorded(notifier):
    with record_notifications() as recorded:
        notifier.info({}, "a.b", {})
        recorded.clear()
        notifier.info({}, "c.d", {})
    assert recorded.event_types() == ["c.d"]
