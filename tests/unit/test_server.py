"""Server lifecycle, executors, and how servers treat bad or stale requests."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest

import rpcframe
import rpcframe.server
from rpcframe import executors, opts, wire
from rpcframe import turns as turns_module
from rpcframe.drivers import base
from rpcframe.rpc import server as rpc_server
from tests.conftest import logged


@pytest.fixture(params=["pollers", "turns"])
def transport(request, conf):
    """fake:// with workers taking turns to receive (its default, as on
    RabbitMQ), and with every idle worker polling (concurrent_poll)."""
    url = "fake://?concurrent_poll=true" if request.param == "pollers" else "fake://"
    transport = rpcframe.get_rpc_transport(conf, url)
    assert transport.capabilities.concurrent_poll is (request.param == "pollers")
    yield transport
    transport.cleanup()


@pytest.fixture
def turns_server(conf, topic):
    """Serve endpoints on fake:// with workers taking turns and a handover
    delay long enough never to pass: yields ``(transport, start)``, where
    ``start(endpoint, timeout)`` serves ``endpoint`` and returns a client.
    Servers are stopped and the transport cleaned up at teardown."""
    opts.register_core(conf)
    conf.set_override("server_handover_delay", 30.0, group="rpcframe")
    transport = rpcframe.get_rpc_transport(conf, "fake://")
    servers = []

    def start(endpoint, timeout=10):
        server = rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="s"), [endpoint]
        )
        server.start()
        servers.append(server)
        return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=timeout)

    yield transport, start
    for server in servers:
        server.stop()
        server.wait()
    transport.cleanup()


class Gate:
    """An endpoint whose calls block until released, counting how many run at once."""

    def __init__(self):
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.entered = threading.Semaphore(0)

    def hold(self, ctxt, n):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        self.entered.release()
        self.release.wait(10)
        with self.lock:
            self.running -= 1
        return n

    def echo(self, ctxt, value):
        return value


def test_a_server_target_needs_topic_and_server_when_it_starts(transport):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic="t"), [Gate()])
    with pytest.raises(rpcframe.InvalidTarget, match="topic and server"):
        server.start()


def test_an_unknown_executor_is_an_executor_load_failure(transport, topic):
    with pytest.raises(rpcframe.ExecutorLoadFailure, match="threading"):
        rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="s"), [Gate()], executor="fibres"
        )


def test_start_twice_warns_and_keeps_serving(serve, client, caplog):
    server = serve(Gate())
    with caplog.at_level(logging.WARNING, logger="rpcframe"):
        server.start()
    assert "already been started" in caplog.text
    assert client.call({}, "echo", value=1) == 1


def test_stop_before_start_gives_up_after_its_timeout(transport, topic):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    with pytest.raises(rpcframe.server.TaskTimeout, match="stop is waiting for start"):
        server.stop(timeout=0.05)


def test_a_caller_waiting_too_long_logs_a_possible_hang(transport, topic, caplog):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    with caplog.at_level(logging.WARNING, logger="rpcframe.server"):
        with pytest.raises(rpcframe.server.TaskTimeout):
            server.wait(log_after=0.01, timeout=0.1)
    assert "Possible hang: wait is waiting for stop to complete" in caplog.text


def test_wait_stop_start_called_in_reverse_order_run_in_order(transport, topic):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    order = []
    waiter = threading.Thread(target=lambda: (server.wait(), order.append("wait")))
    stopper = threading.Thread(target=lambda: (server.stop(), order.append("stop")))
    waiter.start()
    stopper.start()
    server.start()
    order.append("start")
    waiter.join(10)
    stopper.join(10)
    assert order[-1] == "wait" and set(order) == {"start", "stop", "wait"}


def test_a_started_server_can_be_started_again_after_stop_and_wait(serve, client):
    server = serve(Gate())
    server.stop()
    server.wait()
    server.start()
    assert client.call({}, "echo", value=2) == 2


def test_wait_blocks_until_another_thread_stops_the_server(transport, topic):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    waited = threading.Event()
    waiter = threading.Thread(target=lambda: (server.wait(), waited.set()))
    waiter.start()
    assert not waited.wait(0.1)
    server.stop()
    assert waited.wait(10)
    waiter.join(10)


def test_a_stopped_server_takes_no_new_requests(transport, topic, client):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    assert client.call({}, "echo", value=1) == 1
    server.stop()
    server.wait()
    with pytest.raises(rpcframe.MessagingTimeout):
        client.prepare(timeout=0.2).call({}, "echo", value=2)


def test_a_waited_server_can_start_again(transport, topic, client):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    server.stop()
    server.wait()
    server.start()
    try:
        assert client.call({}, "echo", value="again") == "again"
    finally:
        server.stop()
        server.wait()


def test_requests_queued_while_stopped_are_served_after_a_restart(transport, topic, client):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    server.stop()
    server.wait()
    gate = Gate()
    gate.release.set()
    results = []
    caller = threading.Thread(target=lambda: results.append(client.call({}, "echo", value="q")))
    caller.start()
    server.start()
    caller.join(10)
    server.stop()
    server.wait()
    assert results == ["q"]


def test_the_pool_size_bounds_concurrent_work(conf, transport, topic, serve, client):
    conf.set_override("executor_thread_pool_size", 2)
    gate = Gate()
    serve(gate)
    callers = [
        threading.Thread(target=client.call, args=({}, "hold"), kwargs={"n": i}) for i in range(5)
    ]
    for caller in callers:
        caller.start()
    assert gate.entered.acquire(timeout=10) and gate.entered.acquire(timeout=10)
    assert not gate.entered.acquire(timeout=0.2), "a third call ran with a pool of 2"
    gate.release.set()
    for caller in callers:
        caller.join(10)
    assert gate.peak == 2


def test_override_pool_size_wins_over_the_option(transport, topic, client):
    gate = Gate()
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [gate])
    server.start(override_pool_size=1)
    try:
        callers = [
            threading.Thread(target=client.call, args=({}, "hold"), kwargs={"n": i})
            for i in range(2)
        ]
        for caller in callers:
            caller.start()
        assert gate.entered.acquire(timeout=10)
        assert not gate.entered.acquire(timeout=0.2)
        gate.release.set()
        for caller in callers:
            caller.join(10)
        assert gate.peak == 1
    finally:
        gate.release.set()
        server.stop()
        server.wait()


def test_wait_gives_up_on_stuck_work_after_the_stop_timeout(conf, transport, topic, caplog):
    opts.register_core(conf)
    conf.set_override("server_stop_timeout", 0.2, group="rpcframe")
    gate = Gate()
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [gate])
    server.start()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=10)
    client.cast({}, "hold", n=1)
    assert gate.entered.acquire(timeout=10)
    server.stop()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="rpcframe"):
        server.wait()
    assert time.monotonic() - started < 5
    assert "still being handled" in caplog.text
    gate.release.set()


def test_stop_and_wait_from_inside_an_endpoint_do_not_deadlock(transport, topic, client):
    done = threading.Event()

    class SelfStopping:
        def shutdown(self, ctxt):
            server.stop()
            server.wait()
            done.set()

    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [SelfStopping()]
    )
    server.start()
    client.cast({}, "shutdown")
    assert done.wait(10)


def test_a_malformed_cast_is_logged_and_the_server_keeps_serving(transport, topic, serve, client):
    serve(Gate())
    address = base.Address(transport.conf.control_exchange, topic)
    with logged("rpcframe.rpc.server", "dropping malformed request") as dropped:
        transport._driver.send(address, b"\x00garbage")
        assert client.call({}, "echo", value="alive") == "alive"
        # Another worker may still be logging the first message.
        assert dropped.wait(10)


def test_a_duplicate_request_runs_once(transport, topic, serve, client):
    class Counter:
        def __init__(self):
            self.seen = []
            self.first = threading.Event()

        def record(self, ctxt, value):
            self.seen.append(value)
            if value == 1:
                self.first.set()

    counter = Counter()
    serve(counter)
    body = wire.encode_request("record", {"value": 1}, {})
    address = base.Address(transport.conf.control_exchange, topic)
    transport._driver.send(address, body)
    transport._driver.send(address, body)
    assert counter.first.wait(10)
    # Workers may handle the copies concurrently; calls made after both were
    # received come back after both were handled (or dropped).
    assert client.call({}, "record", value=2) is None
    assert client.call({}, "record", value=3) is None
    assert sorted(counter.seen) == [1, 2, 3]


def test_the_threading_executor_runs_workers_on_named_threads():
    executor = executors.ThreadingExecutor(2, "unit")
    names = []
    done = threading.Event()
    executor.spawn(lambda: (names.append(threading.current_thread().name), done.set()))
    assert done.wait(5)
    assert executor.shutdown(5)
    assert names == ["unit-worker-1"]


def test_shutdown_reports_workers_still_running():
    executor = executors.ThreadingExecutor(1, "unit")
    release = threading.Event()
    executor.spawn(lambda: release.wait(10))
    assert executor.shutdown(0.05) is False
    release.set()


def test_a_failing_worker_islogged(caplog):
    executor = executors.ThreadingExecutor(1, "unit")
    with caplog.at_level(logging.ERROR, logger="rpcframe"):
        executor.spawn(lambda: 1 / 0)
        assert executor.shutdown(5)
    assert "Unhandled error" in caplog.text


def test_a_server_starts_workers_only_as_concurrency_needs_them(transport, topic, serve, client):
    server = serve(Gate())
    for i in range(50):
        assert client.call({}, "echo", value=i) == i
    workers = [t for t in threading.enumerate() if t.name.startswith(server._name + "-worker")]
    # One worker handles a call while another waits for the next one.
    assert 1 <= len(workers) <= 2


def test_an_executor_needs_at_least_one_worker():
    with pytest.raises(ValueError, match="at least 1"):
        executors.ThreadingExecutor(0)


def test_importing_rpcframe_and_serving_never_imports_eventlet():
    code = (
        "import sys, rpcframe; from oslo_config import cfg; c = cfg.ConfigOpts(); c([]);"
        "t = rpcframe.get_rpc_transport(c, 'fake://');"
        "s = rpcframe.get_rpc_server(t, rpcframe.Target(topic='t', server='s'), []);"
        "s.start(); s.stop(); s.wait(); t.cleanup();"
        "assert 'eventlet' not in sys.modules, 'eventlet was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class _BreaksOnce(base.Listener):
    """Wraps a listener so that its first poll fails like a broken transport."""

    def __init__(self, listener):
        self._listener = listener
        self.broke = False

    def poll(self, timeout=None):
        if not self.broke:
            self.broke = True
            raise rpcframe.exceptions.TransportDriverError("connection reset")
        return self._listener.poll(timeout)

    def close(self):
        self._listener.close()


def test_a_server_listens_again_after_the_transport_fails(
    transport, topic, client, monkeypatch, caplog
):
    real_listen = transport._driver.listen
    wrapped = []

    def listen(addresses, **kwargs):
        listener = real_listen(addresses, **kwargs)
        if not wrapped:
            wrapped.append(_BreaksOnce(listener))
            return wrapped[0]
        return listener

    monkeypatch.setattr(transport._driver, "listen", listen)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.relisten_delay = 0.01
    server.start()
    try:
        assert client.call({}, "echo", value="back") == "back"
        assert wrapped[0].broke
        assert "receiving failed; subscribing again" in caplog.text
    finally:
        server.stop()
        server.wait()


def test_a_message_that_cannot_be_accepted_is_dropped_and_serving_goes_on(transport, topic, client):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    accept = server._on_received
    failures = []

    def ack_fails_once(incoming):
        if not failures:
            failures.append(incoming)
            raise rpcframe.exceptions.TransportDriverError("ack lost with the connection")
        accept(incoming)

    server._on_received = ack_fails_once
    server.start()
    try:
        with logged("rpcframe.server", "could not be accepted") as dropped:
            client.cast({}, "echo", value="lost")
            assert client.call({}, "echo", value="kept") == "kept"
            assert dropped.wait(10)
        assert len(failures) == 1
    finally:
        server.stop()
        server.wait()


def test_a_reply_whose_inbox_is_missing_for_a_moment_is_retried(transport, topic, client):
    real_send = transport._driver.send
    refused = []

    def send(address, body, **kwargs):
        if address.kind == "reply" and len(refused) < 2:
            refused.append(address)
            raise rpcframe.MessageUndeliverable(None, "", address.topic, body)
        return real_send(address, body, **kwargs)

    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    try:
        transport._driver.send = send
        assert client.call({}, "echo", value="eventually") == "eventually"
        assert len(refused) == 2
    finally:
        transport._driver.send = real_send
        server.stop()
        server.wait()


def test_a_reply_nobody_can_take_is_dropped_at_the_callers_deadline(transport, topic):
    real_send = transport._driver.send
    attempts = []

    def send(address, body, **kwargs):
        if address.kind == "reply":
            attempts.append(address)
            raise rpcframe.MessageUndeliverable(None, "", address.topic, body)
        return real_send(address, body, **kwargs)

    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=0.6)
    try:
        transport._driver.send = send
        with logged("rpcframe.rpc.server", "stopped waiting; reply dropped") as dropped:
            with pytest.raises(rpcframe.MessagingTimeout):
                client.call({}, "echo", value="lost")
            assert dropped.wait(10)
        assert 2 <= len(attempts) <= 4  # retried with backoff, not in a tight loop
    finally:
        transport._driver.send = real_send
        server.stop()
        server.wait()


def test_a_burst_of_casts_runs_without_passing_the_turn(turns_server, monkeypatch):
    # Nothing is left to do once a cast's endpoint returns: the worker keeps
    # the turn even though more casts are waiting.
    _transport, start = turns_server
    passes = []
    pass_turn = turns_module.Turns._pass_turn
    monkeypatch.setattr(
        turns_module.Turns, "_pass_turn", lambda turns: passes.append(1) or pass_turn(turns)
    )
    all_sent, taken = threading.Event(), []

    class Sink:
        def take(self, ctxt, n):
            assert all_sent.wait(10)
            taken.append(n)

        def count(self, ctxt):
            return len(taken)

    client = start(Sink())
    for n in range(20):
        client.cast({}, "take", n=n)
    all_sent.set()
    assert client.call({}, "count") == 20
    assert passes == []


def test_a_call_waiting_for_its_reply_to_be_sent_lets_a_waiting_message_through(turns_server):
    # The worker that holds the turn passes it on when its endpoint returned
    # and another message waits: that one need not wait for the reply's send.
    transport, start = turns_server
    first_runs, second_sent = threading.Event(), threading.Event()
    second_ran, reply_may_go = threading.Event(), threading.Event()

    class Endpoint:
        def first(self, ctxt):
            first_runs.set()
            assert second_sent.wait(10)
            return "first"

        def second(self, ctxt):
            second_ran.set()

    real_send = transport._driver.send

    def held_send(address, body, **kwargs):
        if address.kind == base.REPLY:
            reply_may_go.wait(10)
        return real_send(address, body, **kwargs)

    transport._driver.send = held_send
    client = start(Endpoint(), timeout=20)
    results = []
    caller = threading.Thread(target=lambda: results.append(client.call({}, "first")))
    caller.start()
    try:
        assert first_runs.wait(10)
        client.cast({}, "second")
        second_sent.set()
        assert second_ran.wait(10), "the second message waited for the first's reply"
    finally:
        reply_may_go.set()
        caller.join(10)
    assert results == ["first"]


@pytest.mark.parametrize("delay", [0.0, 0.002])
def test_a_slow_endpoint_does_not_hold_up_other_requests(
    conf, transport, topic, serve, client, delay
):
    # Taking turns, the next request gets through once the handover delay
    # is over; with every idle worker polling, at once.
    opts.register_core(conf)
    conf.set_override("server_handover_delay", delay, group="rpcframe")
    gate = Gate()
    serve(gate)
    slow = threading.Thread(target=client.call, args=({}, "hold"), kwargs={"n": 1})
    slow.start()
    try:
        assert gate.entered.acquire(timeout=10)
        # The slow call occupies one worker; another serves this one.
        assert client.call({}, "echo", value="quick") == "quick"
        assert gate.running == 1
    finally:
        gate.release.set()
        slow.join(10)


def test_a_worker_survives_an_unexpected_error_while_handling(transport, topic, client):
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    handle = server._process_incoming
    failures = []

    def fails_once(incoming):
        if not failures:
            failures.append(incoming)
            raise RuntimeError("bug in a handler")
        handle(incoming)

    server._process_incoming = fails_once
    server.start()
    try:
        with logged("rpcframe.server", "unexpected error while handling") as logged_error:
            client.cast({}, "echo", value="lost")
            assert logged_error.wait(10)
        assert client.call({}, "echo", value="next") == "next"
    finally:
        server.stop()
        server.wait()


def test_short_requests_run_on_the_receiving_worker(turns_server):
    # Taking turns, the worker that received a short request handles it and
    # receives the next one itself: no thread switch per request.
    _transport, start = turns_server
    threads = set()

    class Where:
        def where(self, ctxt):
            threads.add(threading.get_ident())

    client = start(Where())
    for _ in range(20):
        client.call({}, "where")
    assert len(threads) == 1


def test_a_worker_that_first_runs_after_stop_just_ends(transport, topic):
    # Green threads run when the spawner yields: the first worker may start
    # only after stop() (and wait()) let go of the server's pool.
    spawned = []

    class Deferred(executors.ThreadingExecutor):
        def spawn(self, fn):
            spawned.append(fn)

    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server._executor_cls = Deferred
    server.start()
    server.stop()
    server.wait()
    assert len(spawned) == 1
    spawned[0]()  # returns at once: its pool is stopping


def _undeliverable_replies(transport, attempts):
    real_send = transport._driver.send

    def send(address, body, **kwargs):
        if address.kind == "reply":
            attempts.append(address)
            raise rpcframe.MessageUndeliverable(None, "", address.topic, body)
        return real_send(address, body, **kwargs)

    return real_send, send


def test_a_far_future_deadline_on_the_wire_does_not_keep_reply_retries_going(
    conf, transport, topic
):
    # Retries end rpc_response_timeout after the reply, whatever _deadline says.
    conf.set_override("rpc_response_timeout", 1)
    attempts = []
    real_send, send = _undeliverable_replies(transport, attempts)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    request = wire.encode_request(
        "echo", {"value": 1}, {}, msg_id="m-far", reply_q="reply_gone",
        deadline=time.time() + 3600,
    )  # fmt: skip
    try:
        transport._driver.send = send
        with logged("rpcframe.rpc.server", "stopped waiting; reply dropped") as dropped:
            real_send(base.Address("openstack", topic), request)
            assert dropped.wait(10)
        assert 2 <= len(attempts) <= 5
    finally:
        transport._driver.send = real_send
        server.stop()
        server.wait()


def test_replies_retried_at_once_are_bounded(transport, topic, monkeypatch):
    monkeypatch.setattr(rpc_server, "_MAX_REPLY_RETRIES", 2)
    attempts = []
    real_send, send = _undeliverable_replies(transport, attempts)
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [Gate()])
    server.start()
    try:
        transport._driver.send = send
        with logged("rpcframe.rpc.server", "replies already waiting for theirs") as refused:
            for n in range(3):
                request = wire.encode_request(
                    "echo", {"value": n}, {}, msg_id=f"m-{n}", reply_q=f"reply_gone_{n}"
                )
                real_send(base.Address("openstack", topic), request)
            assert refused.wait(10)
    finally:
        transport._driver.send = real_send
        server.stop()
        server.wait()


class WindowRecorder(base.Listener):
    """Wraps a server's listener and records the windows the server offers."""

    def __init__(self, inner: base.Listener) -> None:
        self.inner = inner
        self.windows: list[int | None] = []
        self.changed = threading.Condition()

    def poll(self, timeout=None):
        return self.inner.poll(timeout)

    def pending(self):
        return self.inner.pending()

    def window(self, messages):
        with self.changed:
            self.windows.append(messages)
            self.changed.notify_all()

    def wait_for_window(self, messages, timeout=10):
        with self.changed:
            return self.changed.wait_for(lambda: self.windows[-1:] == [messages], timeout)

    def close(self):
        self.inner.close()

    def cleanup(self):
        self.inner.cleanup()


def _recording(server):
    create, recorders = server._create_listener, []

    def record():
        recorders.append(WindowRecorder(create()))
        return recorders[-1]

    server._create_listener = record
    return recorders


def test_a_server_offers_its_listener_a_window_of_its_free_workers(transport, topic, client):
    gate = Gate()
    server = rpcframe.get_rpc_server(transport, rpcframe.Target(topic=topic, server="s"), [gate])
    recorders = _recording(server)
    server.start(override_pool_size=2)
    try:
        listener = recorders[0]
        assert listener.windows[0] == 2
        client.cast({}, "hold", n=1)
        assert gate.entered.acquire(timeout=10)
        assert listener.wait_for_window(1)
        client.cast({}, "hold", n=2)
        assert gate.entered.acquire(timeout=10)
        assert listener.wait_for_window(0)  # all busy: it should take nothing more
        gate.release.set()
        assert listener.wait_for_window(2)
    finally:
        gate.release.set()
        server.stop()
        server.wait()


@pytest.mark.parametrize(("batch_size", "window"), [(5, 15), (None, None)])
def test_a_batch_listener_offers_a_window_of_whole_batches(conf, batch_size, window):
    transport = rpcframe.get_notification_transport(conf, "fake://")
    listener = rpcframe.get_batch_notification_listener(
        transport,
        [rpcframe.Target(topic="batches")],
        [object()],
        batch_size=batch_size,
        batch_timeout=1,
    )
    recorders = _recording(listener)
    listener.start(override_pool_size=3)
    try:
        assert recorders[0].windows[0] == window
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()


#: Seconds a reply's send takes, as on a link with a long round trip.
SLOW_REPLY = 2 * turns_module._SLOW_FINISH


def test_replies_waiting_long_for_the_transport_do_not_hold_up_the_next_message(conf, topic):
    # Two workers wait to send their replies; had the server counted on
    # them being back in a moment, nobody would receive the third message.
    opts.register_core(conf)
    transport = rpcframe.get_rpc_transport(conf, "fake://")
    third_ran = threading.Event()
    entered = threading.Semaphore(0)

    class Endpoint:
        def first(self, ctxt):
            return "first"

        def held(self, ctxt, n):
            entered.release()
            return n

        def third(self, ctxt):
            third_ran.set()

    real_send = transport._driver.send
    held_replies = []

    def slow_send(address, body, **kwargs):
        if address.kind == base.REPLY:
            if held_replies:
                third_ran.wait(10)  # held until the third message ran
            else:
                threading.Event().wait(SLOW_REPLY)  # the link's round trip
        return real_send(address, body, **kwargs)

    transport._driver.send = slow_send
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="s"), [Endpoint()]
    )
    server.start()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), timeout=20)
    callers = [
        threading.Thread(target=client.call, args=({}, "held"), kwargs={"n": n}) for n in range(2)
    ]
    try:
        for _ in range(turns_module._SLOW_FINISHES):
            assert client.call({}, "first") == "first"  # replies as slow as the link
        held_replies.append(True)
        for caller in callers:
            caller.start()
        assert entered.acquire(timeout=10) and entered.acquire(timeout=10)
        client.cast({}, "third")
        assert third_ran.wait(5), "the third message waited for the replies of the others"
    finally:
        third_ran.set()
        for caller in callers:
            caller.join(10)
        server.stop()
        server.wait()
        transport.cleanup()
