"""Contract cases for asynchronous calls, streams, cancellation and deadlines.

What :meth:`RPCClient.call_async <rpcframe.RPCClient.call_async>` handles,
:meth:`RPCClient.stream <rpcframe.RPCClient.stream>` and
:func:`~rpcframe.rpc.current_call` promise, on any driver: results and
remote errors through a handle, many handles in flight from one thread,
timeouts that leave nothing watched behind, cancellation before, during and
after the server runs the call, streams with a bounded window that close the
server's generator when the caller stops early, and deadlines inherited by
nested calls. Mixed into :class:`rpcframe.testing.contract.DriverContract`,
which supplies the fixtures (``transport``, ``servers``, ``topic``, ``conf``)
and ``client()``.

How the window is checked without looking inside the server: the endpoint's
generator runs in this process, so it can see how many chunks the caller's
:class:`~rpcframe.rpc.handles.Stream` has handed out (its ``position``). The
server asks the generator for chunk ``n`` only while ``n`` is below the credit
it was given plus the window, and that credit never exceeds what was handed
out; so ``produced - position`` bounds what the server holds sent and not
yet consumed, and must never pass the window.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from rpcframe.rpc import current_call
from rpcframe.testing.contract_notify import WAIT
from rpcframe.testing.contract_rpc import RemoteErrorForTests, _Endpoint, _LogWatch

__all__ = ["CallsContract"]

#: What Call.cancel_reason says when the caller cancelled.
_BY_THE_CALLER = "the caller cancelled it"


class _CallsEndpoint(_Endpoint):
    """The suite's endpoint, with generators and methods that watch their own call."""

    def __init__(self, name: str = "server") -> None:
        super().__init__(name)
        #: Set by the test: the transport nested calls are made on.
        self.transport: Any = None
        self.cancel_seen = threading.Event()
        self.seen: dict[str, Any] = {}
        self.generator_closed = threading.Event()
        # The paced stream's view of its consumer (see the module's notes).
        self.consumer: Any = None
        self.consumer_known = threading.Event()
        self.progress = threading.Condition()
        self.produced = 0
        self.most_ahead = 0

    def until_cancelled(self, ctxt: Any) -> str:
        """Wait to be cancelled, then say what the call looked like."""
        call = current_call()
        assert call is not None
        self.started.set()
        woken = call.wait_cancelled(WAIT)
        self.seen.update(cancelled=woken, reason=call.cancel_reason, id=call.id)
        self.cancel_seen.set()
        return "finished anyway"

    def about_this_call(self, ctxt: Any) -> dict[str, Any]:
        call = current_call()
        assert call is not None
        return {"id": call.id, "method": call.method, "deadline": call.deadline}

    def deadline_of(self, ctxt: Any) -> float | None:
        call = current_call()
        return None if call is None else call.deadline

    def relay(self, ctxt: Any, topic: str) -> dict[str, Any]:
        """Ask another server for its call's deadline, with a much longer timeout."""
        call = current_call()
        assert call is not None
        client = rpcframe.get_rpc_client(
            self.transport, rpcframe.Target(topic=topic), timeout=WAIT * 6
        )
        handle = client.call_async(ctxt, "deadline_of")
        return {
            "outer": call.deadline,
            "inner": client.call(ctxt, "deadline_of"),
            "inner_async": handle.result(WAIT),
        }

    def relay_once_cancelled(self, ctxt: Any, topic: str) -> None:
        """Once cancelled, try a nested call and record what it raised."""
        call = current_call()
        assert call is not None
        self.started.set()
        call.wait_cancelled(WAIT)
        client = rpcframe.get_rpc_client(self.transport, rpcframe.Target(topic=topic), timeout=1)
        for kind, nested in (
            ("call", lambda: client.call(ctxt, "deadline_of")),
            ("call_async", lambda: client.call_async(ctxt, "deadline_of")),
        ):
            try:
                nested()
            except Exception as exc:  # noqa: BLE001 - what it raised is the finding
                self.seen[kind] = type(exc).__name__
            else:
                self.seen[kind] = "nothing raised"
        self.cancel_seen.set()

    def count(self, ctxt: Any, n: int) -> Iterator[int]:
        yield from range(n)

    def forever(self, ctxt: Any) -> Iterator[int]:
        """Yields until closed; its ``finally`` says it was closed."""
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            self.generator_closed.set()

    def fail_midway(self, ctxt: Any, n: int) -> Iterator[int]:
        yield from range(n)
        raise ValueError(f"failed after {n} chunks")

    def paced(self, ctxt: Any, n: int) -> Iterator[int]:
        """Yields ``n`` chunks, noting how far ahead of its consumer it got."""
        if not self.consumer_known.wait(WAIT):
            raise RuntimeError("the test never named the stream consuming this")
        for i in range(n):
            with self.progress:
                self.produced = i + 1
                self.most_ahead = max(self.most_ahead, self.produced - self.consumer.position)
                self.progress.notify_all()
            yield i


class CallsContract:
    """What call handles, streams, cancellation and deadlines do over the driver."""

    client: Any
    require: Any
    executor: str | None
    url: str

    @pytest.fixture
    def other_transport(self, conf: Any) -> Iterator[rpcframe.Transport]:
        """A second transport on the same driver: a caller with an inbox of its own."""
        transport = rpcframe.get_rpc_transport(
            conf, self.url, allowed_remote_exmods=[RemoteErrorForTests.__module__]
        )
        yield transport
        transport.cleanup()

    # -- handles -------------------------------------------------------------------

    def test_a_handle_gives_the_result(self, transport, servers, topic):
        servers(topic)
        handle = self.client(transport, topic).call_async({}, "add", a=2, b=3)
        assert isinstance(handle, concurrent.futures.Future)
        assert handle.result(WAIT) == 5
        assert handle.done() and not handle.cancelled()

    def test_two_hundred_handles_from_one_thread_all_resolve(self, transport, servers, topic):
        servers(topic)
        client = self.client(transport, topic)
        handles = {client.call_async({}, "add", a=i, b=i): i for i in range(200)}
        assert len({handle.id for handle in handles}) == 200
        half = list(handles)[:100]
        done, pending = concurrent.futures.wait(half, timeout=WAIT)
        assert len(done) == 100 and not pending
        completed = list(concurrent.futures.as_completed(list(handles)[100:], timeout=WAIT))
        assert len(completed) == 100
        assert all(handle.result(0) == 2 * n for handle, n in handles.items())

    def test_a_handle_nobody_answers_times_out_by_its_deadline(self, other_transport, topic):
        handle = self.client(other_transport, topic, timeout=0.5).call_async({}, "add", a=1, b=1)
        started = time.monotonic()
        with pytest.raises(rpcframe.MessagingTimeout):
            handle.result()
        assert time.monotonic() - started < 0.5 + WAIT / 4
        assert handle.done()
        assert not other_transport._waiter._watches

    def test_a_handle_times_out_on_its_own_while_the_server_works(
        self, transport, other_transport, servers, topic
    ):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        resolved = threading.Event()
        started = time.monotonic()
        handle = self.client(other_transport, topic, timeout=0.5).call_async(
            {}, "block", seconds=WAIT
        )
        handle.add_done_callback(lambda _: resolved.set())
        assert endpoint.started.wait(WAIT)
        # Nobody waits on the handle: the reply inbox resolves it at its deadline.
        assert resolved.wait(WAIT)
        assert 0.5 <= time.monotonic() - started < 0.5 + WAIT / 4
        assert isinstance(handle.exception(0), rpcframe.MessagingTimeout)
        assert not other_transport._waiter._watches

    def test_a_remote_error_comes_back_through_the_handle(self, transport, servers, topic):
        servers(topic)
        handle = self.client(transport, topic).call_async({}, "fail_custom", code=42)
        error = handle.exception(WAIT)
        assert isinstance(error, RemoteErrorForTests)
        assert error.code == 42
        with pytest.raises(RemoteErrorForTests):
            handle.result(0)

    def test_done_callbacks_run_once_with_the_handle(self, transport, servers, topic):
        servers(topic)
        called: list[Any] = []
        resolved = threading.Event()

        def note(handle: Any) -> None:
            called.append((handle, handle.result(0)))
            resolved.set()

        handle = self.client(transport, topic).call_async({}, "add", a=20, b=22)
        handle.add_done_callback(note)
        assert resolved.wait(WAIT)
        assert called == [(handle, 42)]
        late: list[Any] = []
        handle.add_done_callback(late.append)  # already done: runs here, at once
        assert late == [handle]
        assert len(called) == 1

    # -- cancellation --------------------------------------------------------------

    def test_a_call_cancelled_while_queued_is_seen_cancelled_and_sends_no_result(
        self, transport, servers, topic
    ):
        endpoint = servers(topic, endpoint=_CallsEndpoint(), pool_size=1)
        client = self.client(transport, topic, timeout=WAIT * 3)
        busy = client.call_async({}, "block", seconds=WAIT)
        assert endpoint.started.wait(WAIT)  # the one worker is taken
        queued = client.call_async({}, "until_cancelled")
        assert queued.cancel()
        assert queued.cancelled() and queued.done()
        with _LogWatch("rpcframe", "its reply is dropped", 1, level="INFO") as dropped:
            endpoint.release.set()
            assert busy.result(WAIT) == "done"
            assert endpoint.cancel_seen.wait(WAIT)
            assert endpoint.seen["cancelled"] is True
            assert endpoint.seen["reason"] == _BY_THE_CALLER
            assert endpoint.seen["id"] == queued.id
            assert dropped.seen.wait(WAIT)
        with pytest.raises(concurrent.futures.CancelledError):
            queued.result(0)
        assert queued.id not in transport._waiter._watches

    def test_cancelling_a_running_call_wakes_the_endpoint(self, transport, servers, topic):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        handle = self.client(transport, topic, timeout=WAIT * 3).call_async({}, "until_cancelled")
        assert endpoint.started.wait(WAIT)
        started = time.monotonic()
        assert handle.cancel()
        assert endpoint.cancel_seen.wait(WAIT)
        assert time.monotonic() - started < WAIT / 2
        assert endpoint.seen == {"cancelled": True, "reason": _BY_THE_CALLER, "id": handle.id}
        with pytest.raises(concurrent.futures.CancelledError):
            handle.result(0)

    def test_cancelling_a_finished_call_changes_nothing(self, transport, servers, topic):
        servers(topic)
        handle = self.client(transport, topic).call_async({}, "echo", value="kept")
        assert handle.result(WAIT) == "kept"
        assert handle.cancel() is False
        assert not handle.cancelled()
        assert handle.result(0) == "kept"

    # -- streams -------------------------------------------------------------------

    def test_a_stream_yields_every_chunk_in_order(self, transport, servers, topic):
        servers(topic, endpoint=_CallsEndpoint())
        with self.client(transport, topic).stream({}, "count", n=100, window=8) as stream:
            assert list(stream) == list(range(100))
        assert stream.id not in transport._waiter._watches

    def test_a_slow_consumer_holds_the_server_to_the_window(self, transport, servers, topic):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        window, total = 64, 10_000
        stream = self.client(transport, topic, timeout=WAIT * 6).stream(
            {}, "paced", n=total, window=window
        )
        endpoint.consumer = stream
        endpoint.consumer_known.set()
        got = []
        with stream:
            for chunk in stream:
                got.append(chunk)
                if len(got) % 500 == 1 and len(got) < total - window:
                    # A slow consumer: stop until the server has gone well ahead
                    # (past the last credit it was given, at the least).
                    with endpoint.progress:
                        assert endpoint.progress.wait_for(
                            lambda: endpoint.produced - stream.position > window // 2, WAIT
                        ), f"the server stopped at {endpoint.produced} of {total}"
        assert got == list(range(total))
        assert window // 2 < endpoint.most_ahead <= window

    def test_closing_a_stream_closes_the_servers_generator(self, transport, servers, topic):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        stream = self.client(transport, topic).stream({}, "forever", window=4)
        assert [next(stream) for _ in range(3)] == [0, 1, 2]
        stream.close()
        assert endpoint.generator_closed.wait(WAIT)
        with pytest.raises(StopIteration):
            next(stream)
        assert stream.id not in transport._waiter._watches

    def test_breaking_out_of_a_stream_block_closes_the_servers_generator(
        self, transport, servers, topic
    ):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        with self.client(transport, topic).stream({}, "forever", window=4) as stream:
            for chunk in stream:
                if chunk == 10:
                    break
        assert endpoint.generator_closed.wait(WAIT)

    def test_a_generator_that_raises_gives_its_chunks_then_its_error(
        self, transport, servers, topic
    ):
        servers(topic, endpoint=_CallsEndpoint(), pool_size=1)
        got = []
        streaming = self.client(transport, topic, timeout=WAIT * 6)
        with pytest.raises(ValueError, match="failed after 5 chunks"):
            for chunk in streaming.stream({}, "fail_midway", n=5):
                got.append(chunk)
        assert got == [0, 1, 2, 3, 4]
        # The server's only worker is free again at once, not at the stream's deadline.
        assert self.client(transport, topic).call({}, "deadline_of") is not None

    def test_a_generator_method_called_plainly_is_a_clear_type_error(
        self, transport, servers, topic
    ):
        servers(topic, endpoint=_CallsEndpoint())
        with pytest.raises(TypeError, match=r"streams its results.*stream\(\)"):
            self.client(transport, topic).call({}, "count", n=3)

    # -- the call as the endpoint sees it ----------------------------------------

    def test_current_call_is_none_outside_endpoints(self, transport, servers, topic):
        servers(topic, endpoint=_CallsEndpoint())
        assert current_call() is None
        in_callback: list[Any] = []
        resolved = threading.Event()
        handle = self.client(transport, topic).call_async({}, "about_this_call")

        def note(_: Any) -> None:
            in_callback.append(current_call())
            resolved.set()

        handle.add_done_callback(note)
        seen = handle.result(WAIT)
        assert resolved.wait(WAIT)
        assert in_callback == [None]
        assert current_call() is None
        assert seen["id"] == handle.id
        assert seen["method"] == "about_this_call"

    def test_a_nested_call_inherits_the_deadline(self, transport, servers, topic):
        outer = servers(topic, endpoint=_CallsEndpoint())
        outer.transport = transport
        servers(f"{topic}_inner", "inner", endpoint=_CallsEndpoint("inner"))
        client = self.client(transport, topic, timeout=WAIT)
        sent_at = time.time()
        seen = client.call({}, "relay", topic=f"{topic}_inner")
        assert seen["outer"] == pytest.approx(sent_at + WAIT, abs=WAIT / 4)
        # The inner client asked for WAIT * 6 seconds; it got what was left of the outer call.
        assert seen["inner"] == pytest.approx(seen["outer"], abs=0.5)
        assert seen["inner_async"] == pytest.approx(seen["outer"], abs=0.5)

    def test_a_nested_call_from_a_cancelled_call_is_refused(self, transport, servers, topic):
        endpoint = servers(topic, endpoint=_CallsEndpoint())
        endpoint.transport = transport
        servers(f"{topic}_inner", "inner", endpoint=_CallsEndpoint("inner"))
        handle = self.client(transport, topic, timeout=WAIT * 3).call_async(
            {}, "relay_once_cancelled", topic=f"{topic}_inner"
        )
        assert endpoint.started.wait(WAIT)
        assert handle.cancel()
        assert endpoint.cancel_seen.wait(WAIT)
        assert endpoint.seen == {"call": "CallCancelled", "call_async": "CallCancelled"}
