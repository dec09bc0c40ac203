"""Publish hooks: before, after success, after failure."""

from __future__ import annotations

import logging

import pytest

import rpcframe
from rpcframe import exceptions
from rpcframe.notify import hooks


@pytest.fixture
def notifier(transport):
    return rpcframe.Notifier(transport, "pub", driver="test")


def test_before_and_after_are_sent_around_a_successful_publish(notifier):
    seen = []
    with (
        hooks.before_publish.connected(lambda p: seen.append(("before", p))),
        hooks.after_publish.connected(lambda p: seen.append(("after", p))),
        hooks.publish_failed.connected(lambda p: seen.append(("failed", p))),
    ):
        notifier.info({"user_id": "u"}, "a.b", {"x": 1})
    assert [stage for stage, _ in seen] == ["before", "after"]
    before, after = seen[0][1], seen[1][1]
    assert (before.event_type, before.priority, before.publisher_id) == ("a.b", "INFO", "pub")
    assert before.payload == {"x": 1} and before.context == {"user_id": "u"}
    assert before.drivers == ("test",) and before.elapsed is None
    assert after.elapsed is not None and after.elapsed >= 0
    assert after.message["message_id"] == before.message["message_id"]


def test_a_refused_notification_reaches_no_hook(notifier):
    seen = []
    with hooks.before_publish.connected(seen.append):
        with pytest.raises(exceptions.InvalidNotification):
            notifier.info({}, "", {})
    assert seen == []


def test_a_receiver_that_raises_is_logged_and_the_notification_still_goes(notifier, caplog):
    def broken(publication):
        raise RuntimeError("metrics are down")

    after = []
    with (
        hooks.before_publish.connected(broken),
        hooks.after_publish.connected(after.append),
        caplog.at_level(logging.ERROR),
    ):
        notifier.info({}, "a.b", {})
    assert len(after) == 1
    assert "before_publish hook" in caplog.text and "metrics are down" in caplog.text


def test_connect_works_as_a_decorator_and_disconnect_stops_it(notifier):
    seen = []

    @hooks.after_publish.connect
    def receiver(publication):
        seen.append(publication.event_type)

    try:
        notifier.info({}, "first", {})
    finally:
        hooks.after_publish.disconnect(receiver)
    notifier.info({}, "second", {})
    assert seen == ["first"]


def test_a_receiver_connected_twice_is_called_once(notifier):
    seen = []
    hooks.before_publish.connect(seen.append)
    hooks.before_publish.connect(seen.append)
    try:
        notifier.info({}, "a.b", {})
    finally:
        hooks.before_publish.disconnect(seen.append)
    assert len(seen) == 1
    assert hooks.before_publish.receivers == ()


def test_only_callables_can_be_connected():
    with pytest.raises(TypeError, match="must be callable"):
        hooks.after_publish.connect("not a function")  # type: ignore[arg-type]


def test_disconnecting_an_unknown_receiver_does_nothing():
    hooks.publish_failed.disconnect(print)
    assert hooks.publish_failed.receivers == ()
