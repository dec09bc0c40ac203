"""rpcframe.aio on fake://: asyncio clients and servers, and both kinds talking to each other."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest

import rpcframe
import rpcframe.aio
from rpcframe import wire
from rpcframe.drivers import base
from rpcframe.rpc import current_call

WAIT = 10.0


class Endpoint:
    def __init__(self) -> None:
        self.cast_seen: asyncio.Event | None = None
        self.cancelled = threading.Event()
        self.closed = threading.Event()
        self.threads: list[int] = []
        self.produced = 0

    async def add(self, ctxt, a, b):
        return a + b

    def blocking(self, ctxt, a):
        self.threads.append(threading.get_ident())
        return {"double": a * 2, "deadline": current_call().deadline}

    async def note(self, ctxt, value):
        assert self.cast_seen is not None
        self.cast_seen.set()

    async def fail(self, ctxt):
        raise ValueError("no such flavor")

    async def hang(self, ctxt):
        try:
            await asyncio.sleep(WAIT * 3)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    def count(self, ctxt, n):
        try:
            for i in range(n):
                self.produced = i + 1
                yield i
        finally:
            self.closed.set()

    async def acount(self, ctxt, n):
        try:
            for i in range(n):
                self.produced = i + 1
                yield {"i": i}
        finally:
            self.closed.set()

    def plain(self, ctxt):
        return [1, 2, 3]

    async def deadline(self, ctxt):
        return current_call().deadline

    async def slow(self, ctxt, seconds):
        await asyncio.sleep(seconds)  # the behaviour under test: a call outlasting the monitor
        return "slept"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


class Served:
    """An asyncio server on a fresh topic, a client, and the transport, torn down after."""

    def __init__(self, conf, endpoint, **server_kwargs) -> None:
        self.conf = conf
        self.endpoint = endpoint
        self.topic = f"aio_{uuid.uuid4().hex[:8]}"
        self.server_kwargs = server_kwargs

    async def __aenter__(self):
        self.transport = rpcframe.aio.get_rpc_transport(self.conf, "fake://")
        target = rpcframe.Target(topic=self.topic, server="s1")
        self.server = rpcframe.aio.get_rpc_server(
            self.transport, target, [self.endpoint], **self.server_kwargs
        )
        await self.server.start()
        self.client = rpcframe.aio.get_rpc_client(
            self.transport, rpcframe.Target(topic=self.topic), timeout=WAIT
        )
        return self

    async def __aexit__(self, *exc):
        await self.server.stop()
        await self.server.wait(timeout=WAIT)
        await self.transport.cleanup()


def test_async_and_blocking_endpoints_answer_calls(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint) as s:
            assert await s.client.call({}, "add", a=1, b=2) == 3
            answer = await s.client.call({}, "blocking", a=21)
            assert answer["double"] == 42
            assert answer["deadline"] is not None  # current_call() works in the pool
            return threading.get_ident()

    loop_thread = run(main())
    assert endpoint.threads and endpoint.threads[0] != loop_thread


def test_a_cast_reaches_the_endpoint(conf):
    endpoint = Endpoint()

    async def main():
        endpoint.cast_seen = asyncio.Event()
        async with Served(conf, endpoint) as s:
            await s.client.cast({}, "note", value=1)
            await asyncio.wait_for(endpoint.cast_seen.wait(), WAIT)

    run(main())


def test_a_remote_error_is_rebuilt_as_for_threads(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            with pytest.raises(ValueError, match="no such flavor"):
                await s.client.call({}, "fail")
            with pytest.raises(rpcframe.RemoteError) as caught:  # not an allowed module
                await s.client.call({}, "missing")
            assert caught.value.exc_type == "NoSuchMethod"

    run(main())


def test_a_call_times_out_at_its_deadline(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            started = time.monotonic()
            with pytest.raises(rpcframe.MessagingTimeout) as caught:
                await s.client.prepare(timeout=0.3).call({}, "hang")
            assert time.monotonic() - started < WAIT
            assert caught.value.timeout == 0.3

    run(main())


def test_an_asyncio_timeout_around_a_call_is_the_deadline_its_request_carries(conf):
    async def left(call):
        return await call - time.time()

    async def main():
        async with Served(conf, Endpoint()) as s:  # the client's own timeout: WAIT
            assert WAIT - 2 < await left(s.client.call({}, "deadline")) <= WAIT
            async with asyncio.timeout(1.5):
                assert 0 < await left(s.client.call({}, "deadline")) <= 1.5
            async with asyncio.timeout(WAIT * 3):
                async with asyncio.timeout(0.8):  # the soonest of those around it
                    assert 0 < await left(s.client.call({}, "deadline")) <= 0.8
                handle = await s.client.call_async({}, "deadline")
                assert WAIT - 2 < await left(handle) <= WAIT  # longer: the client's wins
            async with asyncio.timeout(1.5):
                async with await s.client.stream({}, "acount", n=2) as chunks:
                    assert [chunk["i"] async for chunk in chunks] == [0, 1]

    run(main())


def test_an_asyncio_timeout_of_another_task_is_not_this_calls(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            entered, release = asyncio.Event(), asyncio.Event()

            async def elsewhere():
                async with asyncio.timeout(0.9):
                    entered.set()
                    await release.wait()

            other = asyncio.ensure_future(elsewhere())
            await entered.wait()
            deadline = await s.client.call({}, "deadline")
            release.set()
            await other
            assert deadline - time.time() > 2

    run(main())


def test_calls_in_flight_share_one_loop_timer_and_leave_nothing_behind(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            loop = asyncio.get_running_loop()
            before = len(loop._scheduled)
            handles = [await s.client.call_async({}, "add", a=i, b=1) for i in range(500)]
            in_flight = len(loop._scheduled)
            assert await asyncio.gather(*handles) == [i + 1 for i in range(500)]
            assert not s.transport._routes and not s.transport._expiries._heap
            return in_flight - before

    assert run(main()) <= 2


def test_a_handle_gives_the_result_and_names_its_server(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            handles = [await s.client.call_async({}, "add", a=i, b=1) for i in range(200)]
            results = await asyncio.gather(*handles)
            assert results == [i + 1 for i in range(200)]
            # Quick calls are not announced; announce_after=0 announces every one.
            assert all(h.done() and h.server is None for h in handles)
            named = await s.client.call_async({}, "add", a=1, b=1, announce_after=0)
            assert await named == 2 and named.server == "s1"
            assert not s.transport._routes  # nothing left watched

    run(main())


def test_cancelling_a_handle_cancels_the_endpoints_task(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint) as s:
            handle = await s.client.call_async({}, "hang")
            handle.cancel()
            await asyncio.to_thread(endpoint.cancelled.wait, WAIT)
            assert endpoint.cancelled.is_set()
            assert handle.cancelled()

    run(main())


def test_cancelling_the_task_awaiting_a_handle_cancels_the_call_on_the_server(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint) as s:
            handle = await s.client.call_async({}, "hang")
            waiter = asyncio.ensure_future(handle)
            await asyncio.sleep(0)  # let it start awaiting
            waiter.cancel()
            await asyncio.to_thread(endpoint.cancelled.wait, WAIT)
            assert endpoint.cancelled.is_set()

    run(main())


def test_cancelling_the_task_awaiting_a_plain_call_cancels_it_on_the_server(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint) as s:
            waiter = asyncio.ensure_future(s.client.call({}, "hang"))
            await asyncio.sleep(0)  # let it send
            while not waiter.done() and not s.transport._routes:
                await asyncio.sleep(0)  # until the call is on its way
            waiter.cancel()
            await asyncio.to_thread(endpoint.cancelled.wait, WAIT)
            assert endpoint.cancelled.is_set()

    run(main())


@pytest.mark.parametrize("method", ["count", "acount"])
def test_a_stream_keeps_the_server_within_its_window(conf, method):
    endpoint = Endpoint()
    window, total = 8, 400

    async def main():
        async with Served(conf, endpoint) as s:
            ahead = 0
            got = []
            async with await s.client.stream({}, method, n=total, window=window) as chunks:
                async for chunk in chunks:
                    got.append(chunk)
                    ahead = max(ahead, endpoint.produced - len(got))
                    if len(got) % 50 == 0:
                        await asyncio.sleep(0.01)  # a slow consumer, now and then
            expected = list(range(total)) if method == "count" else [{"i": i} for i in range(total)]
            assert got == expected
            # Produced but not consumed: the window, plus the one being produced.
            assert ahead <= window + 1

    run(main())


def test_closing_a_stream_closes_the_generator_on_the_server(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint) as s:
            chunks = await s.client.stream({}, "acount", n=10_000, window=4)
            assert await chunks.__anext__() == {"i": 0}
            await chunks.aclose()
            await asyncio.to_thread(endpoint.closed.wait, WAIT)
            assert endpoint.closed.is_set()
            assert endpoint.produced < 10_000

    run(main())


def test_a_stream_of_a_plain_method_fails_clearly(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            chunks = await s.client.stream({}, "plain")
            with pytest.raises(rpcframe.exceptions.StreamNotSupported, match="plain reply"):
                await chunks.__anext__()

    run(main())


def test_a_call_past_the_servers_time_limit_is_cancelled(conf):
    endpoint = Endpoint()

    async def main():
        async with Served(conf, endpoint, max_call_seconds=0.2) as s:
            with pytest.raises(rpcframe.RemoteError) as caught:
                await s.client.call({}, "hang")
            assert caught.value.exc_type == "CallCancelled"
            await asyncio.to_thread(endpoint.cancelled.wait, WAIT)
            assert endpoint.cancelled.is_set()

    run(main())


def test_a_malformed_request_is_answered_and_the_server_goes_on(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            inbox = await s.transport._reply_inbox()
            body = wire.encode({"_msg_id": "bad-1", "_reply_q": inbox.address.topic, "args": 3})
            future = asyncio.get_running_loop().create_future()

            class Catch:
                deadline = time.monotonic() + WAIT

                def deliver(self, reply):
                    if not future.done():
                        future.set_result(reply)

                def expired(self):
                    pass

                def closed(self):
                    pass

            s.transport._watch("bad-1", Catch())
            await s.transport._driver.send(base.Address("openstack", s.topic), body)
            reply = await asyncio.wait_for(future, WAIT)
            assert "MalformedMessage" in reply.failure
            assert await s.client.call({}, "add", a=2, b=3) == 5

    run(main())


def test_a_threaded_client_calls_an_asyncio_server_and_the_reverse(conf):
    endpoint = Endpoint()
    topic = f"mixed_{uuid.uuid4().hex[:8]}"

    class Threaded:
        def mul(self, ctxt, a, b):
            return a * b

    threaded = rpcframe.get_rpc_transport(conf, "fake://")
    server = rpcframe.get_rpc_server(
        threaded, rpcframe.Target(topic=f"{topic}_t", server="t1"), [Threaded()]
    )
    server.start()

    async def main():
        async with Served(conf, endpoint) as s:
            client = rpcframe.get_rpc_client(threaded, rpcframe.Target(topic=s.topic), timeout=WAIT)
            assert await asyncio.to_thread(client.call, {}, "add", a=5, b=6) == 11
            to_threads = rpcframe.aio.get_rpc_client(
                s.transport, rpcframe.Target(topic=f"{topic}_t"), timeout=WAIT
            )
            assert await to_threads.call({}, "mul", a=6, b=7) == 42

    try:
        run(main())
    finally:
        server.stop()
        server.wait()
        threaded.cleanup()


# -- call-monitor heartbeats ----------------------------------------------------------
# The monitor timeout is 2 s, so the server beats each second (its minimum interval):
# a call of 2.5 s gets through only if the beats reach the caller.


def test_an_asyncio_caller_with_a_call_monitor_outlasts_it_on_heartbeats(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            client = s.client.prepare(call_monitor_timeout=2)
            assert await client.call({}, "slow", seconds=2.5) == "slept"
            async with await client.stream({}, "acount", n=3) as chunks:
                assert [chunk["i"] async for chunk in chunks] == [0, 1, 2]

    run(main())


def test_a_threaded_caller_with_a_call_monitor_outlasts_it_on_an_asyncio_servers_beats(conf):
    async def main():
        async with Served(conf, Endpoint()) as s:
            threaded = rpcframe.get_rpc_transport(conf, "fake://")
            try:
                client = rpcframe.get_rpc_client(
                    threaded, rpcframe.Target(topic=s.topic), timeout=WAIT, call_monitor_timeout=2
                )
                return await asyncio.to_thread(client.call, {}, "slow", seconds=2.5)
            finally:
                threaded.cleanup()

    assert run(main()) == "slept"


def test_an_asyncio_caller_gives_up_when_no_heartbeat_comes(conf):
    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, "fake://")
        topic = f"mute_{uuid.uuid4().hex[:8]}"
        mute = await transport._listen(rpcframe.Target(topic=topic, server="mute"))
        try:
            client = rpcframe.aio.get_rpc_client(
                transport, rpcframe.Target(topic=topic), timeout=WAIT, call_monitor_timeout=0.5
            )
            started = time.monotonic()
            with pytest.raises(rpcframe.MessagingTimeout, match="no call-monitor heartbeat"):
                await client.call({}, "anything")
            took = time.monotonic() - started
            taken = await mute.poll(0)
            assert taken is not None  # the request reached a server that never answered
            return took
        finally:
            mute.close()
            await transport.cleanup()

    assert run(main()) < WAIT / 2


def test_an_unknown_async_driver_is_refused_naming_what_is_installed(conf):
    with pytest.raises(rpcframe.DriverLoadFailure, match=r"installed: (.*, )?fake\b"):
        rpcframe.aio.get_rpc_transport(conf, "nosuch://")
