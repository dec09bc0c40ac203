"""Stress tests of the turn-taking schemes, with random delays at every hand-off.

The server workers' turns (rpcframe.turns.Turns), the reply waiter's
leader/follower scheme (rpcframe.replies.ReplyWaiter) and the ZeroMQ node's
senders and loop (rpcframe.drivers.zmq.node) are run by many threads at
once, thousands of times, while :mod:`rpcframe.handoffs` sleeps a random
moment at every point where one thread hands something to another. Each test
checks that no message is lost or handled twice, that nothing waits past a
bound, and that no thread is left behind.

The seed is printed and can be set with ``RPCFRAME_STRESS_SEED``; the size is
the CI size unless ``RPCFRAME_STRESS=big``.
"""

from __future__ import annotations

import collections
import os
import random
import socket
import threading
import time
import uuid

import pytest

import rpcframe
from rpcframe import handoffs, opts, wire
from rpcframe.replies import ReplyWaiter

BIG = os.environ.get("RPCFRAME_STRESS") == "big"
SEED = int(os.environ.get("RPCFRAME_STRESS_SEED", "20261202"))
BOUND = 120.0 if BIG else 60.0  # nothing may take longer than this
#: No call may take this long: a lost wake-up shows as a call that waited out its
#: deadline (BOUND) and then found its reply; jitter delays a call by milliseconds.
STALL = 10.0


class Jitter:
    """The hand-off hook: sleeps up to ``most`` seconds at a fraction of the points."""

    def __init__(self, seed: int, fraction: float = 0.3, most: float = 0.0005) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._fraction = fraction
        self._most = most
        self.points: collections.Counter[str] = collections.Counter()

    def __call__(self, point: str) -> None:
        with self._lock:
            self.points[point] += 1
            delay = self._rng.random() * self._most if self._rng.random() < self._fraction else 0
        if delay:
            time.sleep(delay)  # the injected delay under test, not synchronisation


def _threads_named(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


class _Recorder:
    def __init__(self, expected_casts: int) -> None:
        self._lock = threading.Lock()
        self.handled: collections.Counter[str] = collections.Counter()
        self._casts_left = expected_casts
        self.casts_done = threading.Event()
        if expected_casts == 0:
            self.casts_done.set()

    def call(self, ctxt, item, busy):
        self._record(item, busy)
        return item

    def cast(self, ctxt, item, busy):
        self._record(item, busy)
        with self._lock:
            self._casts_left -= 1
            if self._casts_left == 0:
                self.casts_done.set()

    def _record(self, item, busy):
        with self._lock:
            self.handled[item] += 1
        if busy:
            time.sleep(busy)  # a slow endpoint: makes the server hand its turn over


def _plans(callers: int, per_caller: int) -> list[list[tuple[str, bool, float]]]:
    """Each caller's items: (name, a cast rather than a call, how long the endpoint takes)."""
    plan_rng = random.Random(SEED)
    return [
        [
            (f"{c}-{i}", plan_rng.random() < 0.4, 0.002 if plan_rng.random() < 0.05 else 0)
            for i in range(per_caller)
        ]
        for c in range(callers)
    ]


def _serve_plans(transport, topic, plans, jitter) -> tuple[_Recorder, float]:
    """Serve ``topic`` and run the plans' callers at once under ``jitter``; check everything."""
    casts = sum(is_cast for plan in plans for _, is_cast, _ in plan)
    endpoint = _Recorder(casts)
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [endpoint]
    )
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=BOUND)
    wrong: list[tuple[str, object]] = []
    stalled: list[tuple[str, float]] = []
    failures: list[BaseException] = []

    def caller(plan):
        try:
            for item, is_cast, busy in plan:
                if is_cast:
                    client.cast({}, "cast", item=item, busy=busy)
                else:
                    began = time.monotonic()
                    got = client.call({}, "call", item=item, busy=busy)
                    took = time.monotonic() - began
                    if got != item:
                        wrong.append((item, got))
                    if took > STALL:
                        stalled.append((item, round(took, 1)))
        except BaseException as exc:  # reported below, with the seed
            failures.append(exc)

    started = time.monotonic()
    with handoffs.installed(jitter):
        server.start()
        try:
            threads = [threading.Thread(target=caller, args=(plan,)) for plan in plans]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(BOUND)
            assert not [t for t in threads if t.is_alive()], f"callers hung (seed {SEED})"
            assert endpoint.casts_done.wait(BOUND), f"casts were lost (seed {SEED})"
        finally:
            server.stop()
            server.wait()
            transport.cleanup()
    elapsed = time.monotonic() - started

    assert not failures, f"seed {SEED}: {failures[:3]}"
    assert not wrong, f"seed {SEED}: replies crossed: {wrong[:5]}"
    assert not stalled, f"seed {SEED}: calls waited out their deadline: {stalled[:5]}"
    sent = {item for plan in plans for item, _, _ in plan}
    assert set(endpoint.handled) == sent, f"seed {SEED}: lost {sent - set(endpoint.handled)}"
    assert [i for i, n in endpoint.handled.items() if n != 1] == [], f"seed {SEED}: duplicates"
    assert elapsed < BOUND
    assert _threads_named(f"rpcframe-rpc-{topic}") == []
    return endpoint, elapsed


@pytest.mark.parametrize("concurrent_poll", [False, True], ids=["turns", "pollers"])
def test_server_turns_lose_and_duplicate_nothing_under_random_hand_off_delays(
    conf, concurrent_poll
):
    print(f"seed {SEED} (RPCFRAME_STRESS_SEED)")
    opts.register_core(conf)
    conf.set_override("executor_thread_pool_size", 4)
    conf.set_override("server_handover_delay", 0.0005, group="rpcframe")
    url = "fake://?strict=true" + ("&concurrent_poll=true" if concurrent_poll else "")
    transport = rpcframe.get_rpc_transport(conf, url)
    jitter = Jitter(SEED)
    plans = _plans(*((16, 2000) if BIG else (8, 500)))
    _serve_plans(transport, f"stress_{uuid.uuid4().hex[:8]}", plans, jitter)
    if not concurrent_poll:
        assert jitter.points["turns.take"] and jitter.points["turns.handling"]


def test_the_zeromq_node_loses_and_duplicates_nothing_under_random_hand_off_delays(conf):
    # Senders write under the node's I/O lock while its loop reads and waits
    # on the sockets' edge-triggered descriptors: a wake-up lost at one of
    # those meetings would leave an acknowledgement unread and a caller
    # hanging. Calls (quiet: their reply is their proof), acknowledged casts
    # (de-duplicated by id if sent again) and quiet replies, through one
    # process's node to its own listening socket.
    print(f"seed {SEED} (RPCFRAME_STRESS_SEED)")
    opts.register_core(conf)
    conf.set_override("executor_thread_pool_size", 4)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"zmq://127.0.0.1:{port}/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
    transport = rpcframe.get_rpc_transport(conf, url)
    # Up to 3 ms: longer than the parked loop's look (2 ms), so the loop
    # comes back between two readers and reads beside the next one.
    jitter = Jitter(SEED, most=0.003)
    plans = _plans(*((16, 1000) if BIG else (8, 250)))
    _serve_plans(transport, f"stress_{uuid.uuid4().hex[:8]}", plans, jitter)
    points = ("zmq.written", "zmq.sent", "zmq.unlocked", "zmq.deliver")
    # ... and where a waiting thread takes the reading role, waits on the
    # sockets itself, and the parked loop comes back.
    points += ("zmq.claimed", "zmq.reader-unlocked", "zmq.released", "zmq.resumed")
    for point in points:
        assert jitter.points[point], f"the hand-off point {point} was never reached"


def test_the_reply_waiter_routes_every_reply_to_its_caller_under_random_delays(transport):
    print(f"seed {SEED} (RPCFRAME_STRESS_SEED)")
    callers, per_caller = (32, 1000) if BIG else (12, 400)
    waiter = ReplyWaiter(transport._driver.open_inbox, [])
    sender = rpcframe.transport.load_driver(transport.conf, "fake://?strict=true")
    address = waiter.address
    rng = random.Random(SEED)
    lock = threading.Lock()
    wrong: list[tuple[str, object]] = []
    failures: list[BaseException] = []

    def send_replies(msg_id: str) -> None:
        # What servers do, in a random mix: heartbeats first, a stray reply
        # for a caller that gave up, the reply itself, sometimes twice.
        with lock:
            heartbeat, stray, twice = rng.random() < 0.2, rng.random() < 0.1, rng.random() < 0.05
        if heartbeat:
            sender.send(address, wire.encode_reply(msg_id, None, None, ending=False))
        if stray:
            sender.send(address, wire.encode_reply(f"gone-{msg_id}", result="stray"))
        for _ in range(2 if twice else 1):
            sender.send(address, wire.encode_reply(msg_id, result=msg_id))

    def caller(index: int) -> None:
        try:
            for n in range(per_caller):
                msg_id = f"{index}-{n}"
                waiter.register(msg_id)
                try:
                    threading.Thread(target=send_replies, args=(msg_id,)).start()
                    reply = waiter.wait(msg_id, BOUND, monitor_timeout=BOUND)
                    if reply.result != msg_id:
                        wrong.append((msg_id, reply.result))
                finally:
                    waiter.unregister(msg_id)
        except BaseException as exc:  # reported below, with the seed
            failures.append(exc)

    with handoffs.installed(Jitter(SEED, fraction=0.5)):
        try:
            threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(BOUND)
            assert not [t for t in threads if t.is_alive()], f"callers hung (seed {SEED})"
        finally:
            waiter.close()
            sender.close()

    assert not failures, f"seed {SEED}: {failures[:3]}"
    assert not wrong, f"seed {SEED}: replies crossed: {wrong[:5]}"


class _Watched:
    """A watcher that records what reached it; ``done`` is set on its final reply."""

    def __init__(self, msg_id: str) -> None:
        self.msg_id = msg_id
        self.deadline = time.monotonic() + BOUND
        self.results: list[object] = []
        self.done = threading.Event()
        self.expired_or_closed = False

    def deliver(self, reply: wire.Reply) -> None:
        if reply.ending:
            self.results.append(reply.result)
            self.done.set()

    def expired(self) -> None:
        self.expired_or_closed = True
        self.done.set()

    def closed(self) -> None:
        self.expired()


def test_watched_replies_and_waiting_callers_share_the_inbox_under_random_delays(transport):
    """The pump leads whenever no caller does: every watched reply arrives
    whether or not some caller is waiting at that moment, every caller gets its
    own reply, and the pump thread ends once nothing is watched."""
    print(f"seed {SEED} (RPCFRAME_STRESS_SEED)")
    callers, per_caller = (16, 600) if BIG else (6, 250)
    waiter = ReplyWaiter(transport._driver.open_inbox, [])
    sender = rpcframe.transport.load_driver(transport.conf, "fake://?strict=true")
    address = waiter.address
    rng = random.Random(SEED)
    lock = threading.Lock()
    wrong: list[tuple[str, object]] = []
    failures: list[BaseException] = []

    def reply_later(msg_id: str) -> None:
        sender.send(address, wire.encode_reply(msg_id, None, None, ending=False))
        sender.send(address, wire.encode_reply(msg_id, result=msg_id))

    def caller(index: int) -> None:
        try:
            for n in range(per_caller):
                with lock:
                    watched = rng.random() < 0.5
                msg_id = f"{index}-{n}"
                if watched:
                    watcher = _Watched(msg_id)
                    waiter.watch(msg_id, watcher)
                    threading.Thread(target=reply_later, args=(msg_id,)).start()
                    if not watcher.done.wait(BOUND) or watcher.results != [msg_id]:
                        wrong.append((msg_id, watcher.results or "expired"))
                    waiter.unwatch(msg_id)
                    continue
                waiter.register(msg_id)
                try:
                    threading.Thread(target=reply_later, args=(msg_id,)).start()
                    reply = waiter.wait(msg_id, BOUND)
                    if reply.result != msg_id:
                        wrong.append((msg_id, reply.result))
                finally:
                    waiter.unregister(msg_id)
        except BaseException as exc:  # reported below, with the seed
            failures.append(exc)

    jitter = Jitter(SEED, fraction=0.5)
    with handoffs.installed(jitter):
        try:
            threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(BOUND)
            assert not [t for t in threads if t.is_alive()], f"callers hung (seed {SEED})"
            # Nothing is watched any more: the pump leaves within one read.
            for pump in [t for t in threading.enumerate() if t.name == "rpcframe-replies"]:
                pump.join(BOUND)
                assert not pump.is_alive(), f"the pump outlived its work (seed {SEED})"
        finally:
            waiter.close()
            sender.close()

    assert not failures, f"seed {SEED}: {failures[:3]}"
    assert not wrong, f"seed {SEED}: watched or waited replies went wrong: {wrong[:5]}"
    assert jitter.points["replies.pump"] and jitter.points["replies.lead"]
