"""rpcframe.aio on ZeroMQ: the asyncio driver with itself, threaded rpcframe, and server processes.

The cases every asyncio driver passes (:mod:`tests.functional.aio_common`)
run on ``zmq://`` alone (this process only: the thread node and the event
loop's node see each other's listeners) and on ``zmq+redis://`` with the
real Redis. Then what is ZeroMQ's: an asyncio client spreads its calls over
threaded server processes found in Redis and counts what arrived, a server
process killed during an asyncio call fails the call at once, a cast to a
topic without servers is refused at once, malformed frames sent to an
asyncio server's socket are logged and refused while it goes on serving,
notifications reach asyncio and threaded listeners, and while Redis is down
routing goes on from the cache and servers register again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from oslo_config import cfg

import rpcframe
import rpcframe.aio
from rpcframe import exceptions
from tests.conftest import require_service
from tests.functional import aio_common
from tests.functional.aio_common import CTXT, WAIT, Rig, run
from tests.functional.peers import read_line
from tests.functional.zmq_common import PREFIX, Cluster, endpoint_of, redis_cli, start_redis
from tests.functional.zmq_common import URL as REDIS_URL

pytestmark = [pytest.mark.timeout(300)]

LOCAL_URL = "zmq://?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"


@pytest.fixture
def names() -> tuple[str, str]:
    return "openstack", f"aiozmq_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conf() -> Any:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


@pytest.fixture
def redis() -> None:
    require_service("Redis", "127.0.0.1", 6379)


class TestAsyncioOnZmq(aio_common.AsyncRPCCases):
    url = LOCAL_URL


@pytest.mark.broker
@pytest.mark.usefixtures("redis")
class TestAsyncioOnZmqRedis(aio_common.AsyncRPCCases):
    url = REDIS_URL


@pytest.fixture
def cluster(redis: None, names: tuple[str, str]) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        yield Cluster(names[1], stack)


@pytest.mark.broker
def test_an_asyncio_client_spreads_its_calls_over_threaded_server_processes(conf, names, cluster):
    for name in ("a", "b"):
        cluster.start(name)

    async def main():
        async with Rig(conf, names[1], url=REDIS_URL) as rig:
            answers = Counter(
                await asyncio.gather(*(rig.client.call({}, "whoami") for _ in range(40)))
            )
            for n in range(10):
                await rig.client.prepare(fanout=True).cast({}, "record", n=n)
            for n in range(20):
                await rig.client.cast({}, "record", n=n)
            return answers

    answers = run(main())
    assert set(answers) == {"a", "b"} and sum(answers.values()) == 40, answers
    arrived = {name: cluster.stop(name) for name in ("a", "b")}
    # Each ran every fanout cast, and the topic casts were shared: none lost.
    assert sum(arrived.values()) == 2 * 10 + 20, arrived
    assert all(count >= 10 for count in arrived.values()), arrived


@pytest.mark.broker
def test_a_server_process_killed_during_an_asyncio_call_fails_the_call_at_once(
    conf, names, cluster
):
    proc = cluster.start("a")

    async def main():
        async with Rig(conf, names[1], url=REDIS_URL) as rig:
            client = rig.client.prepare(server="a", timeout=60)
            call = asyncio.ensure_future(client.call({}, "block", seconds=60))
            assert await asyncio.to_thread(read_line, proc, WAIT) == "blocking"
            started = time.monotonic()
            await asyncio.to_thread(cluster.kill, "a")
            with pytest.raises((ConnectionError, rpcframe.MessageDeliveryFailure)) as caught:
                await call
            return time.monotonic() - started, caught.value

    took, error = run(main())
    assert took < 15, f"the call waited {took:.1f} s for a dead server"
    assert "went away" in str(error) or "lost" in str(error), error


@pytest.mark.broker
@pytest.mark.slow
def test_asyncio_routing_goes_on_from_the_cache_while_redis_is_down(conf, names, redis, caplog):
    key = f"{PREFIX}:" + json.dumps(["rpc", "openstack", names[1]], separators=(",", ":"))

    async def main():
        async with Rig(conf, names[1], "s1", url=REDIS_URL) as rig:
            assert await rig.client.call(CTXT, "whoami") == "s1"
            assert redis_cli("shutdown", "nosave").returncode in (0, 1)
            try:
                assert redis_cli("ping").stdout.strip() != "PONG"
                caplog.set_level(logging.WARNING)
                # Down until a refresh of the server's records has failed (one
                # each zmq_target_update): calls go on from the cache meanwhile.
                answers = []
                deadline = time.monotonic() + 30
                while "routing from the cached records" not in caplog.text:
                    assert time.monotonic() < deadline, "no refresh noticed that Redis is down"
                    answers.append(await rig.client.call(CTXT, "whoami"))
                answers += [await rig.client.call(CTXT, "whoami") for _ in range(20)]
                assert set(answers) == {"s1"}
            finally:
                await asyncio.to_thread(start_redis)
            # The server registers again at its next refresh (zmq_target_update).
            deadline = time.monotonic() + 30
            while redis_cli("zcard", key).stdout.strip() != "1":
                assert time.monotonic() < deadline, "the asyncio server did not register again"
                await asyncio.sleep(0.2)  # polling Redis, which has no event to wait on
            assert await rig.client.call(CTXT, "whoami") == "s1"
            assert "answers again" in caplog.text

    run(main())


@pytest.mark.parametrize("url", [LOCAL_URL, REDIS_URL], ids=["zmq", "zmq+redis"])
def test_a_cast_to_a_topic_without_servers_fails_at_once(conf, names, url):
    if url == REDIS_URL:
        require_service("Redis", "127.0.0.1", 6379)

    async def main():
        async with Rig(conf, names[1], url=url) as rig:
            started = time.monotonic()
            with pytest.raises(rpcframe.MessageUndeliverable, match="no process listens"):
                await rig.client.cast({}, "record", value=1)
            return time.monotonic() - started

    assert run(main()) < 1


@pytest.mark.broker
def test_malformed_frames_to_an_asyncio_server_are_dropped_and_it_goes_on(
    conf, names, redis, caplog
):
    topic = names[1]
    garbage = [
        [b"just one frame"],
        [b"RPZ1D\0" + b"0" * 32 + b"\0rpc\0only\0three", b"body"],
        [b"\xff\xfe\x00 binary", b"body", b"one too many"],
    ]

    def attack(endpoint: str) -> list[bytes]:
        ctx = zmq.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.linger = 0
        try:
            raw.connect(endpoint)
            for frames_ in garbage:
                raw.send_multipart(frames_)
            refused = []
            poller = zmq.Poller()
            poller.register(raw, zmq.POLLIN)
            while len(refused) < 1 and poller.poll(5000):
                refused.append(raw.recv())
            return refused
        finally:
            raw.close(0)
            ctx.term()

    async def main():
        async with Rig(conf, topic, "s1", url=REDIS_URL) as rig:
            endpoint = await asyncio.to_thread(endpoint_of, topic, "s1")
            refused = await asyncio.to_thread(attack, endpoint)
            assert await rig.client.call(CTXT, "whoami") == "s1"
            return refused

    with caplog.at_level(logging.WARNING, logger="rpcframe.drivers.zmq"):
        refused = run(main())
    # The one with a readable message id is answered "bad"; each is logged once.
    assert len(refused) == 1 and b"\0bad\0" in refused[0], refused
    dropped = [r for r in caplog.records if "dropping a malformed message" in r.getMessage()]
    assert len(dropped) == len(garbage), [r.getMessage() for r in caplog.records]


class _Notes:
    def __init__(self, expected: int) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.expected = expected
        self.done = threading.Event()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, meta: Any) -> None:
        self.seen.append((event_type, payload))
        if len(self.seen) >= self.expected:
            self.done.set()


class _AsyncNotes(_Notes):
    async def info(  # type: ignore[override]
        self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, meta: Any
    ) -> None:
        super().info(ctxt, publisher_id, event_type, payload, meta)


def test_asyncio_notifications_reach_asyncio_and_threaded_listeners(conf, names):
    topic = names[1]
    on_loop, threaded_notes = _AsyncNotes(3), _Notes(3)

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, LOCAL_URL)
        threaded = rpcframe.get_notification_transport(conf, LOCAL_URL)
        listener = rpcframe.aio.get_notification_listener(
            transport, [rpcframe.Target(topic=topic)], [on_loop], pool="aio"
        )
        other = rpcframe.get_notification_listener(
            threaded, [rpcframe.Target(topic=topic)], [threaded_notes], pool="threads"
        )
        await listener.start()
        other.start()
        try:
            notifier = rpcframe.aio.Notifier(
                transport, "compute.host1", driver="messagingv2", topics=[topic]
            )
            for n in range(3):
                await notifier.info({}, "compute.start", {"n": n})
            assert await aio_common.events(on_loop.done, threaded_notes.done)
        finally:
            other.stop()
            other.wait()
            await listener.stop()
            await listener.wait(timeout=WAIT)
            threaded.cleanup()
            await transport.cleanup()

    run(main())
    expected = [("compute.start", {"n": n}) for n in range(3)]
    assert on_loop.seen == expected
    # The threaded listener's workers handle them side by side: any order.
    assert sorted(threaded_notes.seen, key=lambda seen: seen[1]["n"]) == expected


def test_a_transport_used_from_a_second_event_loop_says_so(conf, names):
    transport = rpcframe.aio.get_rpc_transport(conf, LOCAL_URL)
    client = rpcframe.aio.get_rpc_client(transport, rpcframe.Target(topic=names[1]))

    async def first():
        server = rpcframe.aio.get_rpc_server(
            transport, rpcframe.Target(topic=names[1], server="s1"), [aio_common.Endpoint("s1")]
        )
        await server.start()
        try:
            assert await client.call(CTXT, "whoami") == "s1"
        finally:
            await server.stop()
            await server.wait(timeout=WAIT)

    async def second():
        with pytest.raises(exceptions.ConfigurationError, match="belongs to the event loop"):
            await client.cast(CTXT, "record", value=1)

    run(first())
    run(second())


@pytest.mark.parametrize("url", [LOCAL_URL, "fake://"], ids=["zmq", "fake"])
def test_calls_casts_and_streams_work_on_uvloop(conf, names, url):
    aio_common.exercise_on_uvloop(conf, names[1], url)
