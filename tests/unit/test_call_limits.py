"""Per-server limits: the longest a request may run, and how many run at once."""

from __future__ import annotations

import threading

import pytest

import rpcframe
from rpcframe import opts
from rpcframe.rpc import current_call

WAIT = 10.0


class Blocking:
    """Endpoint whose requests block until released or cancelled, noting what they saw."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reasons: list[str] = []
        self.finished = threading.Event()
        self.running = 0
        self.most = 0
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def hold(self, ctxt):
        call = current_call()
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        try:
            while not self.release.is_set() and not call.cancelled:
                call.wait_cancelled(0.05)
            if call.cancelled:
                self.reasons.append(call.cancel_reason)
            return "done"
        finally:
            with self._lock:
                self.running -= 1
            self.finished.set()

    def count(self, ctxt, n):
        yield from range(n)

    def forever(self, ctxt):
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            self.finished.set()


def test_a_call_past_the_time_limit_is_cancelled_and_its_caller_told_at_once(serve, client):
    endpoint = Blocking()
    serve(endpoint, max_call_seconds=0.2)
    with pytest.raises(rpcframe.RemoteError) as caught:
        client.call({}, "hold")
    assert caught.value.exc_type == "CallCancelled"
    assert "limit of 0.2 s" in str(caught.value)
    assert endpoint.finished.wait(WAIT)
    assert endpoint.reasons == [
        "it ran longer than this server's limit of 0.2 s (rpc_max_call_seconds)"
    ]


def test_the_time_limit_comes_from_the_option_when_the_server_is_not_given_one(
    conf, transport, serve, client
):
    opts.register_core(conf)
    conf.set_override("rpc_max_call_seconds", 0.2, group="rpcframe")
    endpoint = Blocking()
    serve(endpoint)
    with pytest.raises(rpcframe.RemoteError) as caught:
        client.call({}, "hold")
    assert caught.value.exc_type == "CallCancelled"


def test_a_call_within_the_limit_is_untouched(serve, client):
    endpoint = Blocking()
    endpoint.release.set()
    serve(endpoint, max_call_seconds=30)
    assert client.call({}, "hold") == "done"
    assert endpoint.reasons == []


def test_a_stream_past_the_time_limit_closes_its_generator_and_fails_the_stream(serve, client):
    endpoint = Blocking()
    serve(endpoint, max_call_seconds=0.2)
    received = 0
    with pytest.raises(rpcframe.RemoteError) as caught:
        for _ in client.stream({}, "forever", window=4):
            received += 1
    assert caught.value.exc_type == "CallCancelled"
    assert received > 0
    assert endpoint.finished.wait(WAIT)  # the generator's finally ran


@pytest.mark.parametrize(("given", "option", "pool"), [(2, 0, 2), (None, 3, 3), (100, 0, 64)])
def test_the_concurrent_limit_caps_the_servers_workers(conf, serve, given, option, pool):
    """The cap is the worker pool, whose window bounds what the server takes
    from its queues (tests/functional/test_amqp_flow.py shows a capped server
    leaving requests to another one on RabbitMQ)."""
    opts.register_core(conf)
    conf.set_override("rpc_max_concurrent_calls", option, group="rpcframe")
    server = serve(Blocking(), max_concurrent_calls=given)
    assert server._turns._size == pool


@pytest.mark.parametrize(
    ("name", "value"),
    [("max_call_seconds", -1), ("max_call_seconds", "5"), ("max_concurrent_calls", 1.5)],
)
def test_a_bad_limit_is_refused_naming_it(transport, topic, name, value):
    with pytest.raises(ValueError, match=name):
        rpcframe.get_rpc_server(
            transport, rpcframe.Target(topic=topic, server="s"), [Blocking()], **{name: value}
        )
