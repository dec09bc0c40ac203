"""The reply waiter: routing, heartbeats, hand-over between waiting callers."""

from __future__ import annotations

import threading

import pytest

import rpcframe
from rpcframe import exceptions, handoffs, wire
from rpcframe.replies import ReplyWaiter


@pytest.fixture
def waiter(transport):
    waiter = ReplyWaiter(transport._driver.open_inbox, [])
    assert waiter.address.kind == "reply"  # opens the inbox
    yield waiter
    waiter.close()


def reply(transport, waiter, msg_id, **kwargs):
    transport._driver.send(waiter.address, wire.encode_reply(msg_id, **kwargs), mandatory=True)


def test_a_reply_reaches_the_caller_waiting_for_its_id(transport, waiter):
    waiter.register("a")
    reply(transport, waiter, "a", result=1)
    assert waiter.wait("a", 5).result == 1


def test_replies_for_unknown_ids_are_dropped(transport, waiter):
    waiter.register("mine")
    reply(transport, waiter, "someone-else", result=0)
    reply(transport, waiter, "mine", result=1)
    assert waiter.wait("mine", 5).result == 1


def test_a_malformed_reply_is_dropped(transport, waiter, caplog):
    waiter.register("mine")
    transport._driver.send(waiter.address, b"garbage", mandatory=True)
    reply(transport, waiter, "mine", result=1)
    assert waiter.wait("mine", 5).result == 1
    assert "malformed reply" in caplog.text


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, wire.encode({"x": 1}).replace(b'{\\"x\\": 1}', b"[" * 100_000)],
    ids=["nested-body", "nested-inside-the-envelope"],
)
def test_a_deeply_nested_reply_does_not_reach_a_waiting_call(transport, waiter, caplog, body):
    waiter.register("mine")
    transport._driver.send(waiter.address, body, mandatory=True)
    reply(transport, waiter, "mine", result=1)
    assert waiter.wait("mine", 5).result == 1
    assert "malformed reply" in caplog.text


def test_heartbeats_are_skipped_and_extend_the_monitor_deadline(transport, waiter):
    waiter.register("a")
    reply(transport, waiter, "a", ending=False)
    reply(transport, waiter, "a", result="final")
    assert waiter.wait("a", 5, monitor_timeout=1).result == "final"


def test_waiting_past_the_timeout_raises(waiter):
    waiter.register("a")
    with pytest.raises(rpcframe.MessagingTimeout) as info:
        waiter.wait("a", 0.05)
    assert info.value.timeout == 0.05


def test_no_heartbeat_within_the_monitor_timeout_raises(waiter):
    waiter.register("a")
    with pytest.raises(rpcframe.MessagingTimeout, match="heartbeat"):
        waiter.wait("a", 5, monitor_timeout=0.05)


def test_many_waiting_callers_each_get_their_reply_whatever_the_order(transport, waiter):
    ids = [f"id{i}" for i in range(8)]
    for msg_id in ids:
        waiter.register(msg_id)
    results = {}
    ready = threading.Barrier(len(ids) + 1)

    def wait(msg_id):
        ready.wait(5)
        results[msg_id] = waiter.wait(msg_id, 10).result

    threads = [threading.Thread(target=wait, args=(msg_id,)) for msg_id in ids]
    for t in threads:
        t.start()
    ready.wait(5)
    for msg_id in reversed(ids):
        reply(transport, waiter, msg_id, result=msg_id.upper())
    for t in threads:
        t.join(10)
    assert results == {msg_id: msg_id.upper() for msg_id in ids}


def test_a_caller_whose_turn_ends_hands_the_inbox_to_a_follower(transport, waiter):
    waiter.register("leader")
    waiter.register("follower")
    got = {}

    def lead():
        with pytest.raises(rpcframe.MessagingTimeout):
            waiter.wait("leader", 0.3)
        got["leader"] = "timed out"

    leader = threading.Thread(target=lead)
    leader.start()
    follower_done = threading.Event()

    def follow():
        got["follower"] = waiter.wait("follower", 10).result
        follower_done.set()

    threading.Thread(target=follow).start()
    leader.join(5)  # the leader times out; the follower must take over reading
    reply(transport, waiter, "follower", result="taken over")
    assert follower_done.wait(10)
    assert got == {"leader": "timed out", "follower": "taken over"}


def test_close_wakes_waiting_callers(waiter):
    waiter.register("a")
    errors = []

    def wait():
        try:
            waiter.wait("a", 30)
        except exceptions.TransportDriverError as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait)
    thread.start()
    waiter.close()
    thread.join(10)
    assert not thread.is_alive()
    assert errors


class _Watched:
    def __init__(self, seconds: float) -> None:
        import time

        self.deadline = time.monotonic() + seconds
        self.replies: list[wire.Reply] = []
        self.expired_at: float | None = None
        self.over = threading.Event()

    def deliver(self, reply):
        self.replies.append(reply)
        if reply.ending:
            self.over.set()

    def expired(self):
        import time

        self.expired_at = time.monotonic()
        self.over.set()

    def closed(self):
        self.over.set()


def test_a_watched_reply_arrives_with_nobody_waiting(transport, waiter):
    watched = _Watched(30)
    waiter.watch("w", watched)
    reply(transport, waiter, "w", result=None, failure=None, ending=False)  # a heartbeat
    reply(transport, waiter, "w", result=7)
    assert watched.over.wait(10)
    assert [r.result for r in watched.replies] == [None, 7]
    assert watched.expired_at is None


def test_a_watch_added_while_the_pump_reads_still_expires_near_its_deadline(waiter):
    reading = threading.Event()

    def hook(point):
        if point == "replies.pump":
            reading.set()

    long = _Watched(60)
    with handoffs.installed(hook):
        waiter.watch("long", long)
        # The pump has chosen how long to read (for long's sake) and reads.
        assert reading.wait(10)
    short = _Watched(0.2)
    waiter.watch("short", short)
    assert short.over.wait(10)
    assert short.expired_at is not None
    assert short.expired_at - short.deadline < 1.0  # not at the end of some long read
    assert not long.over.is_set()
    waiter.unwatch("long")


def test_closing_tells_every_watcher(waiter):
    watched = _Watched(60)
    waiter.watch("w", watched)
    waiter.close()
    assert watched.over.is_set() and watched.expired_at is None
    with pytest.raises(exceptions.TransportClosed):
        waiter.watch("again", _Watched(60))
