"""Contract cases for RPC through the whole stack, on any driver.

Call, cast, direct and fanout calls, timeouts, remote errors, large and
unicode payloads, malformed bodies, deadlines, call-monitor heartbeats and
stopping a busy server. Mixed into
:class:`rpcframe.testing.contract.DriverContract`, which supplies the fixtures
(``transport``, ``servers``, ``driver``, ``topic``) and ``client()``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

import rpcframe
from rpcframe import wire
from rpcframe.drivers import base
from rpcframe.testing.contract_notify import WAIT

__all__ = ["RPCContract", "RemoteErrorForTests"]


class RemoteErrorForTests(Exception):
    """An application exception the suite sends across the wire."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail


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


class _LogWatch(logging.Handler):
    """Counts log records containing ``text``; ``seen`` is set at ``expected`` of them.

    ``level`` (a level name) lowers the logger's level while the watch runs,
    to see records below the default WARNING.
    """

    def __init__(self, logger: str, text: str, expected: int, level: str | None = None) -> None:
        super().__init__(logging.DEBUG)
        self._logger = logging.getLogger(logger)
        self._level = level
        self._saved_level = self._logger.level
        self._text = text
        self._expected = expected
        self.count = 0
        self.seen = threading.Event()
        self.tracebacks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks.append(record.getMessage())
        if self._text in record.getMessage():
            self.count += 1
            if self.count >= self._expected:
                self.seen.set()

    def __enter__(self) -> _LogWatch:
        if self._level is not None:
            self._logger.setLevel(self._level)
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        if self._level is not None:
            self._logger.setLevel(self._saved_level)


class RPCContract:
    """What RPC does over the driver: the client, server and dispatcher on top of it."""

    client: Any
    require: Any
    executor: str | None
    url: str

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
        # On a busy machine the server may start the call only after the
        # caller gave up: the late reply comes all the same.
        assert endpoint.started.wait(WAIT)
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
        self, transport, servers, topic, driver
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
            b"[" * 100_000,
            wire.encode({"method": "echo", "args": {"value": 1}}).replace(b"1}", b"[" * 100_000),
        ]
        with _LogWatch("rpcframe", "dropping malformed request", len(bad_bodies)) as watch:
            for body in bad_bodies:
                driver.send(address, body)
            assert self.client(transport, topic).call({}, "echo", value="ok") == "ok"
            # Each one is a line saying why it was dropped, never a traceback.
            assert watch.seen.wait(WAIT), f"only {watch.count} of {len(bad_bodies)} were logged"
        assert not watch.tracebacks, watch.tracebacks

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
        # A server beats every max(timeout / 2, 1 s): with a 2 s call-monitor
        # timeout, a call running 2.5 s lives only through its heartbeats.
        endpoint = servers(topic)
        client = self.client(transport, topic, call_monitor_timeout=2)
        releaser = threading.Timer(2.5, endpoint.release.set)
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
