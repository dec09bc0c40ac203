"""The driver contract suite: what every rpcframe driver must do.

A driver passes when a subclass of :class:`DriverContract` naming its URL
passes under pytest::

    from rpcframe.testing.contract import DriverContract

    class TestMyDriver(DriverContract):
        url = "mydriver://localhost/"

The suite checks the raw driver interface of :mod:`rpcframe.drivers.base`
(addresses, round-robin, fanout, inboxes, ack/requeue, close, expiry,
``mandatory``), then RPC through the whole stack (call, cast, direct,
fanout, timeouts, remote errors, large and unicode payloads, malformed
bodies, heartbeats, stop), and notifications through the whole stack
(:mod:`rpcframe.testing.contract_notify`). Tests that need a capability the driver does not
declare are skipped by capability, never by driver name. Every topic is
unique per test, so the suite can run against a shared broker.

Tests wait on events, never on sleeps; every wait has a timeout, so a broken
driver fails instead of hanging.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe import exceptions, wire
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.testing.contract_notify import NotificationContract

__all__ = ["DriverContract", "RemoteErrorForTests"]

WAIT = 10.0  # generous bound for anything that should happen "soon"


class RemoteErrorForTests(Exception):
    """An application exception the suite sends across the wire."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class _Endpoint:
    """An endpoint with one method per behaviour the suite checks."""

    def __init__(self, name: str = "server") -> None:
        self.name = name
        self.casts: list[Any] = []
        self.cast_event = threading.Event()
        self.release = threading.Event()
        self.started = threading.Event()
        self.expected_casts = 1
        self._lock = threading.Lock()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def context(self, ctxt: Any) -> Any:
        return ctxt

    def add(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    def record(self, ctxt: Any, value: Any) -> None:
        with self._lock:
            self.casts.append(value)
            if len(self.casts) >= self.expected_casts:
                self.cast_event.set()

    def fail_builtin(self, ctxt: Any, message: str) -> None:
        raise ValueError(message)

    def fail_custom(self, ctxt: Any, code: int) -> None:
        raise RemoteErrorForTests(code, "custom failure")

    def block(self, ctxt: Any, seconds: float) -> str:
        self.started.set()
        self.release.wait(seconds)
        return "done"

    def _private(self, ctxt: Any) -> str:
        return "secret"


class DriverContract(NotificationContract):
    """Subclass with ``url = "scheme://..."`` to run the suite on a driver.

    ``executor`` names the executor the suite's servers and listeners run on
    (None: the default, ``threading``); ``"eventlet"`` needs a monkey-patched
    process.
    """

    url: str = "fake://"
    executor: str | None = None

    # -- fixtures ----------------------------------------------------------------

    @pytest.fixture
    def conf(self) -> cfg.ConfigOpts:
        conf = cfg.ConfigOpts()
        conf([])
        return conf

    @pytest.fixture
    def transport(self, conf: cfg.ConfigOpts) -> Iterator[rpcframe.Transport]:
        transport = rpcframe.get_rpc_transport(conf, self.url, allowed_remote_exmods=[__name__])
        yield transport
        transport.cleanup()

    @pytest.fixture
    def driver(self, conf: cfg.ConfigOpts) -> Iterator[base.Driver]:
        """The driver on its own, on the same URL (and so the same queues) as ``transport``."""
        with self.raw_driver(conf) as driver:
            yield driver

    @pytest.fixture
    def topic(self) -> str:
        return _unique("contract")

    @pytest.fixture
    def servers(self, transport: rpcframe.Transport) -> Iterator[Any]:
        started: list[Any] = []

        def start(topic: str, name: str = "server", endpoint: Any = None, **kwargs: Any) -> Any:
            endpoint = endpoint or _Endpoint(name)
            kwargs.setdefault("executor", self.executor)
            server = rpcframe.get_rpc_server(
                transport, rpcframe.Target(topic=topic, server=name), [endpoint], **kwargs
            )
            server.start()
            started.append((server, endpoint))
            return endpoint

        yield start
        for server, endpoint in started:
            endpoint.release.set()
            server.stop()
            server.wait()

    def client(
        self, transport: rpcframe.Transport, topic: str, **kwargs: Any
    ) -> rpcframe.RPCClient:
        kwargs.setdefault("timeout", WAIT)
        return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), **kwargs)

    def require(self, has_capabilities: base.Driver | rpcframe.Transport, capability: str) -> None:
        if not getattr(has_capabilities.capabilities, capability):
            pytest.skip(f"driver lacks the {capability!r} capability")

    # -- the raw driver interface ---------------------------------------------------

    def test_a_listener_receives_what_is_sent_to_its_topic(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"hello")
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"hello"
            incoming.ack()
        finally:
            listener.close()

    def test_bodies_travel_byte_for_byte(self, driver, topic):
        body = bytes(range(256)) * 4 + b"\x00end"
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), body)
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == body
            incoming.ack()
        finally:
            listener.close()

    def test_topic_messages_are_shared_between_listeners(self, driver, topic):
        address = base.Address("contract", topic)
        first, second = driver.listen([address]), driver.listen([address])
        try:
            for i in range(20):
                driver.send(address, str(i).encode())
            got: dict[str, list[bytes]] = {"first": [], "second": []}
            deadline = time.monotonic() + WAIT
            while len(got["first"]) + len(got["second"]) < 20 and time.monotonic() < deadline:
                for name, listener in (("first", first), ("second", second)):
                    incoming = listener.poll(0.05)
                    if incoming is not None:
                        got[name].append(incoming.body)
                        incoming.ack()
            everything = sorted(got["first"] + got["second"], key=int)
            assert everything == [str(i).encode() for i in range(20)]
            assert got["first"] and got["second"], "one listener got every message"
        finally:
            first.close()
            second.close()

    def test_a_server_address_reaches_only_that_server(self, driver, topic):
        one = driver.listen([base.Address("contract", topic, server="one")])
        two = driver.listen([base.Address("contract", topic, server="two")])
        try:
            driver.send(base.Address("contract", topic, server="two"), b"for two")
            incoming = two.poll(WAIT)
            assert incoming is not None and incoming.body == b"for two"
            incoming.ack()
            assert one.poll(0.2) is None
        finally:
            one.close()
            two.close()

    def test_fanout_reaches_every_listener(self, driver, topic):
        self.require(driver, "fanout")
        address = base.Address("contract", topic, fanout=True)
        listeners = [driver.listen([address]) for _ in range(3)]
        try:
            driver.send(address, b"everyone")
            for listener in listeners:
                incoming = listener.poll(WAIT)
                assert incoming is not None and incoming.body == b"everyone"
                incoming.ack()
        finally:
            for listener in listeners:
                listener.close()

    def test_poll_returns_none_when_nothing_arrives(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            started = time.monotonic()
            assert listener.poll(0.1) is None
            assert time.monotonic() - started < WAIT
        finally:
            listener.close()

    def test_close_wakes_a_blocked_poll(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        result: list[Any] = []
        polling = threading.Thread(target=lambda: result.append(listener.poll(None)))
        polling.start()
        listener.close()
        polling.join(WAIT)
        assert not polling.is_alive(), "close() did not wake poll()"
        assert result == [None]

    def test_concurrent_pollers_each_get_their_own_messages_and_close_wakes_all(
        self, driver, topic
    ):
        self.require(driver, "concurrent_poll")
        address = base.Address("contract", topic)
        listener = driver.listen([address])
        got: list[Any] = []
        changed = threading.Condition()

        def poll_twice() -> None:
            for _ in range(2):
                incoming = listener.poll(None)
                if incoming is not None:
                    incoming.ack()
                with changed:
                    got.append(incoming and incoming.body)
                    changed.notify_all()

        pollers = [threading.Thread(target=poll_twice) for _ in range(3)]
        for poller in pollers:
            poller.start()
        for i in range(3):
            driver.send(address, str(i).encode())
        with changed:
            assert changed.wait_for(lambda: len(got) == 3, WAIT)
        listener.close()
        for poller in pollers:
            poller.join(WAIT)
        assert not any(poller.is_alive() for poller in pollers), "close() left a poller blocked"
        assert sorted(b for b in got if b is not None) == [b"0", b"1", b"2"]
        assert got.count(None) == 3

    def test_close_is_safe_twice_and_poll_after_close_returns_none(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        listener.close()
        listener.close()
        assert listener.poll(0.01) is None

    def test_a_message_is_settled_once(self, driver, topic):
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"once")
            incoming = listener.poll(WAIT)
            assert incoming is not None
            incoming.ack()
            with pytest.raises(exceptions.MessageStateError):
                incoming.ack()
            with pytest.raises(exceptions.MessageStateError):
                incoming.requeue()
        finally:
            listener.close()

    def test_a_requeued_message_is_delivered_again(self, driver, topic):
        self.require(driver, "requeue")
        listener = driver.listen([base.Address("contract", topic)])
        try:
            driver.send(base.Address("contract", topic), b"again")
            first = listener.poll(WAIT)
            assert first is not None
            first.requeue()
            second = listener.poll(WAIT)
            assert second is not None and second.body == b"again"
            second.ack()
        finally:
            listener.close()

    def test_messages_not_taken_by_a_closed_listener_go_to_the_next(self, driver, topic):
        address = base.Address("contract", topic)
        first = driver.listen([address])
        for i in range(5):
            driver.send(address, str(i).encode())
        taken = first.poll(WAIT)
        assert taken is not None
        taken.ack()
        first.close()
        second = driver.listen([address])
        try:
            rest = []
            for _ in range(4):
                incoming = second.poll(WAIT)
                assert incoming is not None
                rest.append(incoming.body)
                incoming.ack()
            assert sorted([*rest, taken.body]) == [str(i).encode() for i in range(5)]
        finally:
            second.close()

    def test_notifications_wait_for_a_listener(self, driver, topic):
        self.require(driver, "durable_notifications")
        address = base.Address("contract", f"{topic}.info", kind=base.NOTIFY)
        driver.send(address, b"stored")
        listener = driver.listen([address])
        try:
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"stored"
            incoming.ack()
        finally:
            listener.close()

    def test_a_pool_shares_one_queue_and_pools_each_get_everything(self, driver, topic):
        self.require(driver, "pools")
        address = base.Address("contract", f"{topic}.info", kind=base.NOTIFY)
        pool_a = [driver.listen([address], pool=f"{topic}-a") for _ in range(2)]
        pool_b = driver.listen([address], pool=f"{topic}-b")
        try:
            for i in range(10):
                driver.send(address, str(i).encode())
            received_a: list[bytes] = []
            deadline = time.monotonic() + WAIT
            while len(received_a) < 10 and time.monotonic() < deadline:
                for listener in pool_a:
                    incoming = listener.poll(0.05)
                    if incoming is not None:
                        received_a.append(incoming.body)
                        incoming.ack()
            received_b = []
            for _ in range(10):
                incoming = pool_b.poll(WAIT)
                assert incoming is not None
                received_b.append(incoming.body)
                incoming.ack()
            expected = [str(i).encode() for i in range(10)]
            assert sorted(received_a, key=int) == expected
            assert sorted(received_b, key=int) == expected
        finally:
            for listener in [*pool_a, pool_b]:
                listener.close()

    def test_inboxes_have_distinct_addresses_and_receive_replies(self, driver):
        first, second = driver.open_inbox(), driver.open_inbox()
        try:
            assert first.address != second.address
            assert first.address.kind == base.REPLY
            driver.send(second.address, b"reply", mandatory=True)
            incoming = second.poll(WAIT)
            assert incoming is not None and incoming.body == b"reply"
            incoming.ack()
            assert first.poll(0.1) is None
        finally:
            first.close()
            second.close()

    def test_mandatory_send_to_a_closed_inbox_is_undeliverable(self, driver):
        self.require(driver, "mandatory")
        inbox = driver.open_inbox()
        inbox.close()
        with pytest.raises(exceptions.MessageUndeliverable):
            driver.send(inbox.address, b"nobody", mandatory=True)

    def test_mandatory_send_to_an_unknown_topic_is_undeliverable(self, driver, topic):
        self.require(driver, "mandatory")
        with pytest.raises(exceptions.MessageUndeliverable):
            driver.send(base.Address("contract", topic), b"nobody", mandatory=True)

    def test_an_expired_message_is_not_delivered(self, driver, topic):
        address = base.Address("contract", topic)
        driver.listen([address]).close()  # the queue exists, with no consumer
        driver.send(address, b"stale", expiry=0.05)
        driver.send(address, b"fresh")
        time.sleep(0.2)  # lets the TTL pass: the behaviour under test, not synchronisation
        listener = driver.listen([address])
        try:
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"fresh"
            incoming.ack()
        finally:
            listener.close()

    def test_a_closed_driver_refuses_to_send(self, conf):
        driver = msg_transport.load_driver(conf, self.url)
        driver.close()
        with pytest.raises(exceptions.TransportClosed):
            driver.send(base.Address("contract", "x"), b"late")

    # -- RPC through the whole stack -----------------------------------------------------

    def test_call_returns_the_result(self, transport, servers, topic):
        servers(topic)
        assert self.client(transport, topic).call({}, "add", a=2, b=3) == 5

    def test_call_delivers_the_context(self, transport, servers, topic):
        servers(topic)
        ctxt = {"user_id": "u-1", "roles": ["admin"], "request_id": "req-1"}
        assert self.client(transport, topic).call(ctxt, "context") == ctxt

    def test_cast_runs_the_method(self, transport, servers, topic):
        endpoint = servers(topic)
        self.client(transport, topic).cast({}, "record", value="cast-1")
        assert endpoint.cast_event.wait(WAIT)
        assert endpoint.casts == ["cast-1"]

    def test_a_direct_call_reaches_the_named_server(self, transport, servers, topic):
        servers(topic, "one")
        servers(topic, "two")
        client = self.client(transport, topic).prepare(server="two")
        assert {client.call({}, "whoami") for _ in range(10)} == {"two"}

    def test_topic_calls_are_shared_by_the_servers(self, transport, servers, topic):
        servers(topic, "one")
        servers(topic, "two")
        client = self.client(transport, topic)
        assert {client.call({}, "whoami") for _ in range(20)} == {"one", "two"}

    def test_a_fanout_cast_reaches_every_server(self, transport, servers, topic):
        self.require(transport, "fanout")
        endpoints = [servers(topic, f"s{i}") for i in range(3)]
        self.client(transport, topic).prepare(fanout=True).cast({}, "record", value="all")
        for endpoint in endpoints:
            assert endpoint.cast_event.wait(WAIT)
            assert endpoint.casts == ["all"]

    def test_a_call_with_fanout_is_refused(self, transport, topic):
        with pytest.raises(rpcframe.InvalidTarget):
            self.client(transport, topic).prepare(fanout=True).call({}, "echo", value=1)

    def test_a_call_nobody_answers_times_out_on_time(self, transport, topic):
        client = self.client(transport, topic, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(rpcframe.MessagingTimeout):
            client.call({}, "echo", value=1)
        assert 0.3 <= time.monotonic() - started < 0.3 + WAIT / 2

    def test_a_late_reply_does_not_confuse_the_next_call(self, transport, servers, topic):
        endpoint = servers(topic)
        client = self.client(transport, topic)
        with pytest.raises(rpcframe.MessagingTimeout):
            client.prepare(timeout=0.3).call({}, "block", seconds=WAIT)
        assert endpoint.started.is_set()
        endpoint.release.set()
        assert client.call({}, "echo", value="next") == "next"

    def test_a_builtin_exception_comes_back_as_itself(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(ValueError, match="broken on purpose") as info:
            self.client(transport, topic).call({}, "fail_builtin", message="broken on purpose")
        assert "Traceback" in str(info.value)

    def test_an_allowed_exception_is_rebuilt_with_its_fields(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(RemoteErrorForTests) as info:
            self.client(transport, topic).call({}, "fail_custom", code=42)
        assert info.value.code == 42
        assert type(info.value).__name__ == "RemoteErrorForTests_Remote"

    def test_an_exception_from_a_module_not_allowed_is_a_remote_error(
        self, conf, servers, topic, transport
    ):
        servers(topic)
        strict = rpcframe.get_rpc_transport(conf, self.url)
        try:
            with pytest.raises(rpcframe.RemoteError) as info:
                self.client(strict, topic).call({}, "fail_custom", code=7)
            assert info.value.exc_type == "RemoteErrorForTests"
        finally:
            strict.cleanup()

    def test_an_unknown_method_is_a_remote_no_such_method(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(rpcframe.RemoteError) as info:
            self.client(transport, topic).call({}, "no_such_thing")
        assert info.value.exc_type == "NoSuchMethod"

    def test_a_private_method_cannot_be_called(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(rpcframe.RemoteError) as info:
            self.client(transport, topic).call({}, "_private")
        assert info.value.exc_type == "NoSuchMethod"

    def test_a_version_the_server_lacks_is_refused(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(rpcframe.RemoteError) as info:
            self.client(transport, topic).prepare(version="2.0").call({}, "echo", value=1)
        assert info.value.exc_type == "UnsupportedVersion"

    def test_wrong_argument_names_come_back_as_a_clear_type_error(self, transport, servers, topic):
        servers(topic)
        with pytest.raises(TypeError, match="cannot take the arguments sent"):
            self.client(transport, topic).call({}, "add", a=1, c=2)

    def test_unicode_and_control_characters_round_trip(self, transport, servers, topic):
        servers(topic)
        value = {
            "text": 'naïve café ☃ 𝄞 \u0000\u001f\u2028 "quoted" \\ back',
            "ключ": ["値", 1.5, None, True],
        }
        assert self.client(transport, topic).call({}, "echo", value=value) == value

    def test_a_large_payload_round_trips(self, transport, servers, topic):
        servers(topic)
        value = "x" * (5 * 1024 * 1024)
        assert self.client(transport, topic).call({}, "echo", value=value) == value

    def test_malformed_bodies_are_dropped_and_the_server_keeps_serving(
        self, transport, servers, topic, caplog, driver
    ):
        servers(topic)
        address = base.Address(transport.conf.control_exchange, topic)
        bad_bodies = [
            b"not json at all",
            b"\xff\xfe\x00\x01 binary garbage \x80",
            b'{"oslo.version": "9.0", "oslo.message": "{}"}',
            wire.encode({"args": {}}),
            wire.encode({"method": "echo", "args": [1, 2]}),
            b"[1, 2, 3]",
            b"{" * (10 * 1024 * 1024),
        ]
        for body in bad_bodies:
            driver.send(address, body)
        assert self.client(transport, topic).call({}, "echo", value="still here") == "still here"

    def test_a_malformed_call_gets_an_error_reply(self, transport, driver, servers, topic):
        servers(topic)
        inbox = driver.open_inbox()
        try:
            body = wire.encode({"_msg_id": "m-1", "_reply_q": inbox.address.topic, "args": {}})
            driver.send(base.Address(transport.conf.control_exchange, topic), body)
            incoming = inbox.poll(WAIT)
            assert incoming is not None
            incoming.ack()
            reply = wire.parse_reply(incoming.body)
            assert reply.msg_id == "m-1"
            assert reply.failure is not None
            error = wire.deserialize_remote_exception(reply.failure, [])
            assert isinstance(error, rpcframe.RemoteError)
            assert "no 'method'" in str(error)
        finally:
            inbox.close()

    def test_a_request_whose_caller_gave_up_is_not_run(self, transport, driver, servers, topic):
        endpoint = servers(topic)
        stale = wire.encode_request("record", {"value": "stale"}, {}, deadline=time.time() - 1)
        driver.send(base.Address(transport.conf.control_exchange, topic), stale)
        client = self.client(transport, topic)
        client.cast({}, "record", value="fresh")
        assert endpoint.cast_event.wait(WAIT)
        assert client.call({}, "echo", value=1) == 1
        assert endpoint.casts == ["fresh"]

    def test_heartbeats_keep_a_long_call_alive(self, transport, servers, topic):
        endpoint = servers(topic)
        client = self.client(transport, topic, call_monitor_timeout=0.2)
        releaser = threading.Timer(0.8, endpoint.release.set)
        releaser.start()
        try:
            assert client.call({}, "block", seconds=WAIT) == "done"
        finally:
            releaser.cancel()

    def test_a_silent_server_fails_the_call_monitor(self, transport, driver, topic):
        listener = driver.listen([base.Address(transport.conf.control_exchange, topic)])
        try:
            client = self.client(transport, topic, timeout=WAIT, call_monitor_timeout=0.3)
            started = time.monotonic()
            with pytest.raises(rpcframe.MessagingTimeout):
                client.call({}, "echo", value=1)
            assert time.monotonic() - started < WAIT / 2
        finally:
            listener.close()

    def test_one_client_serves_many_threads(self, transport, servers, topic):
        servers(topic)
        client = self.client(transport, topic)
        errors: list[BaseException] = []

        def worker(n: int) -> None:
            try:
                for i in range(25):
                    assert client.call({}, "add", a=n, b=i) == n + i
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT * 3)
        assert not errors
        assert not any(thread.is_alive() for thread in threads)

    def test_stop_lets_a_running_call_finish(self, transport, topic):
        endpoint = _Endpoint()
        server = rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="s"), [endpoint], executor=self.executor
        )
        server.start()
        client = self.client(transport, topic)
        result: list[Any] = []
        caller = threading.Thread(
            target=lambda: result.append(client.call({}, "block", seconds=WAIT))
        )
        caller.start()
        assert endpoint.started.wait(WAIT)
        server.stop()
        endpoint.release.set()
        server.wait()
        caller.join(WAIT)
        assert result == ["done"]
