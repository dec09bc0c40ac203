"""The dispatchers on their own: decisions, metadata, batch groups."""

from __future__ import annotations

import pytest

from rpcframe import exceptions, identity, wire
from rpcframe.notify.dispatcher import (
    BatchNotificationDispatcher,
    NotificationDispatcher,
    NotificationResult,
)


def notification(priority="info", event_type="a.b", payload=None, sender=None):
    message = {
        "message_id": wire.new_uuid(),
        "publisher_id": "pub",
        "event_type": event_type,
        "priority": priority.upper(),
        "payload": payload if payload is not None else {},
        "timestamp": "2024-01-01 00:00:00.000000",
    }
    return wire.parse_notification(wire.encode_notification(message, {"u": 1}, sender=sender))


class Endpoint:
    def __init__(self, result=None, raises=None):
        self.result, self.raises, self.calls = result, raises, []

    def info(self, *args):
        self.calls.append(args)
        if self.raises is not None:
            raise self.raises
        return self.result

    error = info


def test_every_endpoint_is_called_when_all_handle():
    first, second = Endpoint(), Endpoint(NotificationResult.HANDLED)
    assert NotificationDispatcher([first, second]).dispatch(notification()) == "handled"
    assert len(first.calls) == len(second.calls) == 1


def test_requeue_stops_at_the_endpoint_that_asked():
    first, second = Endpoint(NotificationResult.REQUEUE), Endpoint()
    assert NotificationDispatcher([first, second]).dispatch(notification()) == "requeue"
    assert second.calls == []


def test_an_endpoint_failure_counts_as_requeue():
    endpoint = Endpoint(raises=KeyError("x"))
    assert NotificationDispatcher([endpoint]).dispatch(notification()) == "requeue"


def test_halt_listener_propagates_to_the_listener():
    endpoint = Endpoint(raises=exceptions.HaltListener("stop", requeue=True))
    with pytest.raises(exceptions.HaltListener) as info:
        NotificationDispatcher([endpoint]).dispatch(notification())
    assert info.value.requeue is True


def test_a_priority_nobody_handles_is_handled():
    assert NotificationDispatcher([Endpoint()]).dispatch(notification("debug")) == "handled"


def test_metadata_names_the_sender_when_the_notifier_did():
    endpoint = Endpoint()
    sender = identity.local_sender("svc")
    NotificationDispatcher([endpoint]).dispatch(notification(sender=sender.to_wire()))
    metadata = endpoint.calls[0][4]
    assert metadata.sender == sender
    assert metadata == {"message_id": metadata["message_id"], "timestamp": metadata["timestamp"]}


def test_a_malformed_sender_is_left_out_of_the_metadata():
    endpoint = Endpoint()
    NotificationDispatcher([endpoint]).dispatch(notification(sender={"name": 1}))
    assert "sender" not in endpoint.calls[0][4]


class BatchEndpoint:
    def __init__(self, requeue_priority=None):
        self.batches, self.requeue_priority = [], requeue_priority

    def info(self, messages):
        self.batches.append(("info", messages))

    def error(self, messages):
        self.batches.append(("error", messages))
        if self.requeue_priority == "error":
            return NotificationResult.REQUEUE
        return None


def test_a_batch_is_split_by_priority_and_requeue_covers_only_that_group():
    endpoint = BatchEndpoint(requeue_priority="error")
    batch = [notification("info"), notification("error"), notification("info")]
    requeue = BatchNotificationDispatcher([endpoint]).dispatch_batch(batch)
    assert requeue == {1}
    assert [(p, len(m)) for p, m in endpoint.batches] == [("info", 2), ("error", 1)]


def test_a_batch_endpoint_only_gets_what_its_filter_shows():
    import rpcframe

    class Filtered(BatchEndpoint):
        filter_rule = rpcframe.NotificationFilter(event_type="^keep$")

    endpoint = Filtered()
    batch = [notification(event_type="keep"), notification(event_type="drop")]
    BatchNotificationDispatcher([endpoint]).dispatch_batch(batch)
    ((_, messages),) = endpoint.batches
    assert [m["event_type"] for m in messages] == ["keep"]
