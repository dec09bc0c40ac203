"""What every asyncio driver does with asyncio clients and servers, and with threaded peers.

A driver's functional tests subclass :class:`AsyncRPCCases`, name its URL
and give the ``conf`` and ``names`` (exchange, topic) fixtures: asyncio
clients call asyncio servers (calls, casts, fanout, direct calls, remote
errors, timeouts, handles, cancels, streams), and threaded rpcframe clients
and servers call asyncio ones on the same URL.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

import rpcframe
import rpcframe.aio
from tests.functional.interop_common import InteropEndpoint, InteropError

ALLOWED = ["tests.functional.interop_common"]
WAIT = 20.0
CTXT = {"user_id": "aio-user", "roles": ["admin"], "request_id": "req-aio"}


class Endpoint(InteropEndpoint):
    """The interop endpoints, plus what only asyncio servers are asked for here."""

    target = rpcframe.Target(version="1.3")

    def __init__(self, name: str, tally: threading.Semaphore | None = None) -> None:
        super().__init__(name)
        self.cancelled = threading.Event()
        self.tally = tally or threading.Semaphore(0)

    def record(self, ctxt: Any, value: Any) -> None:
        super().record(ctxt, value)
        self.tally.release()

    async def aadd(self, ctxt: Any, a: int, b: int) -> int:
        return a + b

    async def hang(self, ctxt: Any) -> None:
        try:
            await asyncio.sleep(WAIT * 3)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def count(self, ctxt: Any, n: int) -> Any:
        for i in range(n):
            yield {"i": i}


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, WAIT * 6))


class Rig:
    """An asyncio transport with servers on a topic, and a client of it; torn down after."""

    def __init__(self, conf: Any, topic: str, *names: str, url: str) -> None:
        self.conf = conf
        self.topic = topic
        self.names = names
        self.url = url
        #: Released once per record, by every endpoint of the rig.
        self.tally = threading.Semaphore(0)
        self.endpoints = {name: Endpoint(name, self.tally) for name in names}
        self.servers: list[Any] = []

    async def __aenter__(self) -> Rig:
        self.transport = rpcframe.aio.get_rpc_transport(
            self.conf, self.url, allowed_remote_exmods=ALLOWED
        )
        for name, endpoint in self.endpoints.items():
            server = rpcframe.aio.get_rpc_server(
                self.transport, rpcframe.Target(topic=self.topic, server=name), [endpoint]
            )
            await server.start()
            self.servers.append(server)
        self.client = rpcframe.aio.get_rpc_client(
            self.transport, rpcframe.Target(topic=self.topic, version="1.0"), timeout=WAIT
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        for server in self.servers:
            await server.stop()
            await server.wait(timeout=WAIT)
        await self.transport.cleanup()


async def tallied(rig: Rig, count: int) -> bool:
    """Whether the rig's endpoints recorded ``count`` values within WAIT."""
    deadline = time.monotonic() + WAIT
    for _ in range(count):
        left = max(0.0, deadline - time.monotonic())
        if not await asyncio.to_thread(rig.tally.acquire, timeout=left):
            return False
    return True


async def events(*events: threading.Event) -> bool:
    """Whether every event is set within WAIT (waited for in a thread)."""
    deadline = time.monotonic() + WAIT
    for event in events:
        if not await asyncio.to_thread(event.wait, max(0.0, deadline - time.monotonic())):
            return False
    return True


def exercise_on_uvloop(conf: Any, topic: str, url: str) -> None:
    """Calls, handles, a cast and a stream, client and server on a uvloop event loop."""
    uvloop = pytest.importorskip("uvloop")  # the uvloop extra, which tox installs

    async def main() -> list[Any]:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        async with Rig(conf, topic, "s1", url=url) as rig:
            assert await rig.client.call(CTXT, "aadd", a=40, b=2) == 42
            handles = [await rig.client.call_async(CTXT, "aadd", a=i, b=1) for i in range(200)]
            assert await asyncio.gather(*handles) == [i + 1 for i in range(200)]
            await rig.client.cast(CTXT, "record", value="on uvloop")
            assert await tallied(rig, 1)
            async with await rig.client.stream(CTXT, "count", n=50, window=8) as chunks:
                assert [chunk["i"] async for chunk in chunks] == list(range(50))
            return rig.endpoints["s1"].records

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(asyncio.wait_for(main(), WAIT * 3)) == ["on uvloop"]


class AsyncRPCCases:
    """The cases; a subclass sets :attr:`url`."""

    url: str

    def rig(self, conf: Any, topic: str, *names: str) -> Rig:
        return Rig(conf, topic, *names, url=self.url)

    def test_an_asyncio_call_gets_the_result_of_async_and_plain_endpoints(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                assert await rig.client.call(CTXT, "aadd", a=40, b=2) == 42
                assert await rig.client.call(CTXT, "add", a=1, b=2) == 3  # a plain one, in the pool
                seen = await rig.client.call(CTXT, "context")
                assert {key: seen[key] for key in CTXT} == CTXT

        run(main())

    def test_an_asyncio_cast_runs_on_the_server(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                await rig.client.cast(CTXT, "record", value="cast-1")
                assert await events(rig.endpoints["s1"].got)
                assert rig.endpoints["s1"].records == ["cast-1"]

        run(main())

    def test_a_fanout_cast_reaches_every_asyncio_server(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1", "s2") as rig:
                await rig.client.prepare(fanout=True).cast(CTXT, "record", value="fan")
                assert await events(*(e.got for e in rig.endpoints.values()))
                assert [e.records for e in rig.endpoints.values()] == [["fan"], ["fan"]]

        run(main())

    def test_a_direct_call_reaches_the_named_asyncio_server(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1", "s2") as rig:
                for name in ("s1", "s2", "s2", "s1"):
                    assert await rig.client.prepare(server=name).call(CTXT, "whoami") == name

        run(main())

    def test_remote_errors_come_back_as_for_threaded_clients(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                with pytest.raises(ValueError, match="bad value"):
                    await rig.client.call(CTXT, "fail_builtin", message="bad value")
                with pytest.raises(InteropError) as caught:
                    await rig.client.call(CTXT, "fail_custom", code=7)
                assert caught.value.code == 7
                with pytest.raises(rpcframe.RemoteError) as unknown:
                    await rig.client.call(CTXT, "no_such_method")
                assert unknown.value.exc_type == "NoSuchMethod"

        run(main())

    def test_an_asyncio_call_times_out_at_its_deadline(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                started = time.monotonic()
                with pytest.raises(rpcframe.MessagingTimeout) as caught:
                    await rig.client.prepare(timeout=0.5).call(CTXT, "hang")
                assert 0.5 <= time.monotonic() - started < WAIT
                assert caught.value.timeout == 0.5

        run(main())

    def test_a_thousand_handles_in_flight_all_get_their_results(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                handles = [await rig.client.call_async(CTXT, "aadd", a=i, b=1) for i in range(1000)]
                assert await asyncio.gather(*handles) == [i + 1 for i in range(1000)]
                # Quick calls are not announced; announced ones name their server.
                named = [
                    await rig.client.call_async(CTXT, "aadd", a=i, b=1, announce_after=0)
                    for i in range(10)
                ]
                assert await asyncio.gather(*named) == [i + 1 for i in range(10)]
                assert {handle.server for handle in named} == {"s1"}

        run(main())

    def test_cancelling_a_handle_cancels_the_call_on_the_asyncio_server(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                handle = await rig.client.call_async(CTXT, "hang")
                handle.cancel()
                assert await events(rig.endpoints["s1"].cancelled)
                assert handle.cancelled()

        run(main())

    def test_a_stream_delivers_every_chunk_in_order(self, conf, names):
        async def main():
            async with self.rig(conf, names[1], "s1") as rig:
                async with await rig.client.stream(CTXT, "count", n=300, window=16) as chunks:
                    got = [chunk["i"] async for chunk in chunks]
                assert got == list(range(300))

        run(main())

    def test_an_asyncio_client_calls_a_threaded_server(self, conf, names):
        topic = names[1]
        threaded = rpcframe.get_rpc_transport(conf, self.url, allowed_remote_exmods=ALLOWED)
        endpoint = Endpoint("t1")
        server = rpcframe.get_rpc_server(
            threaded, rpcframe.Target(topic=topic, server="t1"), [endpoint]
        )
        server.start()

        async def main():
            async with self.rig(conf, topic) as rig:
                assert await rig.client.call(CTXT, "add", a=6, b=7) == 13
                with pytest.raises(InteropError):
                    await rig.client.call(CTXT, "fail_custom", code=3)
                await rig.client.prepare(fanout=True).cast(CTXT, "record", value="from-aio")
                assert await events(endpoint.got)

        try:
            run(main())
        finally:
            server.stop()
            server.wait()
            threaded.cleanup()
        assert endpoint.records == ["from-aio"]

    def test_a_threaded_client_calls_an_asyncio_server(self, conf, names):
        topic = names[1]
        threaded = rpcframe.get_rpc_transport(conf, self.url, allowed_remote_exmods=ALLOWED)
        client = rpcframe.get_rpc_client(threaded, rpcframe.Target(topic=topic), timeout=WAIT)

        async def main():
            async with self.rig(conf, topic, "s1"):
                assert await asyncio.to_thread(client.call, CTXT, "aadd", a=20, b=22) == 42
                with pytest.raises(ValueError, match="nope"):
                    await asyncio.to_thread(client.call, CTXT, "fail_builtin", message="nope")
                stream = await asyncio.to_thread(client.stream, CTXT, "count", n=50)
                assert [c["i"] for c in await asyncio.to_thread(list, stream)] == list(range(50))

        try:
            run(main())
        finally:
            threaded.cleanup()
