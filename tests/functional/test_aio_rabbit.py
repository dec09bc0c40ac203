"""rpcframe.aio on RabbitMQ: the asyncio driver with itself, threaded rpcframe and oslo.messaging.

The cases every asyncio driver passes (:mod:`tests.functional.aio_common`:
asyncio clients and servers, threaded rpcframe peers), and what is
RabbitMQ's: an asyncio client calls an oslo.messaging server (in its own
process, ``oslo_peer.py``), and oslo.messaging calls asyncio servers. The
queues are declared as the threaded driver declares them (quorum queues
included), replies to a caller's queue that is gone are undeliverable, and
a connection the broker drops (``rabbitmqctl close_all_connections``) is
reopened: listeners consume again and a stream in flight completes with
every chunk once, in order. Every test uses topics and an exchange of its
own and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
import rpcframe.aio
import rpcframe.opts
from rpcframe import wire
from rpcframe.drivers import base
from rpcframe.drivers.amqp.aio import protocol
from tests import brokers
from tests.functional import aio_common, peers
from tests.functional.aio_common import CTXT, WAIT, Endpoint, run, tallied
from tests.functional.interop_common import InteropError
from tests.functional.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"aio_x{tag}", f"aio_{tag}"
    yield exchange, topic
    brokers.delete_queues(prefixes=(topic,))
    brokers.delete_exchanges([exchange], prefixes=(topic,))


@pytest.fixture
def conf(names: tuple[str, str]) -> Any:
    return brokers.conf_for_exchange(names[0])


class Rig(aio_common.Rig):
    """The shared rig, on RabbitMQ unless told otherwise."""

    def __init__(self, conf: Any, topic: str, *names: str, url: str = brokers.RABBIT_URL) -> None:
        super().__init__(conf, topic, *names, url=url)

    @property
    def generation(self) -> int:
        """How many connections the transport's driver has opened so far."""
        link = self.transport._driver._link
        return link.generation if link is not None else 0


class TestAsyncioOnRabbitMQ(aio_common.AsyncRPCCases):
    url = brokers.RABBIT_URL


def test_calls_casts_and_streams_work_on_uvloop(conf, names):
    aio_common.exercise_on_uvloop(conf, names[1], brokers.RABBIT_URL)


# -- what only RabbitMQ does -----------------------------------------------------------


def test_a_reply_to_a_caller_queue_that_is_gone_is_undeliverable(conf, names):
    async def main():
        async with Rig(conf, names[1]) as rig:
            body = wire.encode_reply("no-such-call", 42, None)
            gone = base.Address("", f"reply_{uuid.uuid4().hex}", kind=base.REPLY)
            with pytest.raises(rpcframe.MessageUndeliverable):
                await rig.transport._driver.send(gone, body, mandatory=True, timeout=WAIT)

    run(main())


def test_a_refused_login_is_an_authentication_error(conf, names):
    url = f"rabbit://guest:wrong@{brokers.RABBIT_HOST}:{brokers.RABBIT_PORT}/"

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, url)
        try:
            address = base.Address(names[0], names[1])
            with pytest.raises(rpcframe.exceptions.AuthenticationError) as caught:
                await transport._driver.send(address, b"{}", timeout=WAIT)
            assert isinstance(caught.value.__cause__, protocol.LoginRefused)
        finally:
            await transport.cleanup()

    run(main())


def test_quorum_queues_are_declared_as_the_threaded_driver_declares_them(conf, names):
    topic = names[1]
    url = f"{brokers.RABBIT_URL}?rabbit_quorum_queue=true&rabbit_transient_queues_ttl=120"
    threaded = rpcframe.get_rpc_transport(conf, url)
    server = rpcframe.get_rpc_server(
        threaded, rpcframe.Target(topic=topic, server="t1"), [Endpoint("t1")]
    )

    async def main():
        async with Rig(conf, topic, "s1", url=url) as rig:
            # The threaded server subscribes to the same queues without a refusal.
            await asyncio.to_thread(server.start)
            assert await rig.client.prepare(server="t1").call(CTXT, "whoami") == "t1"
            assert await rig.client.prepare(server="s1").call(CTXT, "whoami") == "s1"
            return brokers.queue_properties([topic])

    try:
        queues = run(main())
    finally:
        server.stop()
        server.wait()
        threaded.cleanup()
    assert queues[topic]["durable"] is True
    assert queues[topic]["arguments"]["x-queue-type"] == "quorum"
    assert queues[f"{topic}.s1"]["arguments"]["x-queue-type"] == "quorum"
    fanouts = [props for name, props in queues.items() if name.startswith(f"{topic}_fanout_")]
    assert fanouts and all(props["arguments"]["x-expires"] == 120_000 for props in fanouts)


def test_with_stream_fanout_every_asyncio_server_reads_the_topics_stream(conf, names):
    topic = names[1]
    url = (
        f"{brokers.RABBIT_URL}?rabbit_stream_fanout=true&rabbit_transient_quorum_queue=true"
        "&rabbit_qos_prefetch_count=10"
    )

    async def main():
        async with Rig(conf, topic, "s1", "s2", url=url) as rig:
            await rig.client.prepare(fanout=True).cast(CTXT, "record", value="streamed")
            assert await tallied(rig, 2)
            return [e.records for e in rig.endpoints.values()], brokers.queue_properties([topic])

    records, queues = run(main())
    assert records == [["streamed"], ["streamed"]]
    assert queues[f"{topic}_fanout"]["arguments"]["x-queue-type"] == "stream"


# -- asyncio rpcframe and oslo.messaging -------------------------------------------------


def test_an_asyncio_client_calls_an_oslo_server(conf, names):
    exchange, topic = names

    async def main():
        async with Rig(conf, topic) as rig:
            client = rig.client.prepare(server="oslo-1")
            assert await client.call(CTXT, "add", a=40, b=2) == 42
            seen = await client.call(CTXT, "context")
            assert {key: seen[key] for key in CTXT} == CTXT
            with pytest.raises(InteropError) as caught:
                await client.call(CTXT, "fail_custom", code=7)
            assert caught.value.code == 7
            await client.cast(CTXT, "record", value="cast-from-aio")
            # Each call is a round trip: this waits on the peer, not on a timer.
            deadline = time.monotonic() + WAIT
            recorded = await client.call(CTXT, "recorded")
            while "cast-from-aio" not in recorded and time.monotonic() < deadline:
                recorded = await client.call(CTXT, "recorded")
            assert recorded == ["cast-from-aio"]

    with peers.oslo_server(brokers.RABBIT_URL, exchange, topic, "oslo-1"):
        run(main())


def test_an_oslo_client_calls_asyncio_servers(conf, names):
    exchange, topic = names

    async def main():
        async with Rig(conf, topic, "rf-1", "rf-2") as rig:
            outcomes = await asyncio.to_thread(
                peers.run_oslo, "client", brokers.RABBIT_URL, exchange, topic
            )
            one, two = rig.endpoints["rf-1"], rig.endpoints["rf-2"]
            # Each got the fanout; one of them (the shared queue's pick) also the cast.
            assert await tallied(rig, 3)
            assert "fanout-from-oslo" in one.records and "fanout-from-oslo" in two.records
            return outcomes, one.records + two.records

    outcomes, records = run(main())
    assert outcomes["add"] == {"result": 42}
    assert outcomes["context"] == {
        "result": {"user_id": "oslo-user", "roles": ["reader"], "request_id": "req-oslo"}
    }
    assert outcomes["fail_custom"]["error"] == "InteropError_Remote"
    assert outcomes["no_such_method"]["exc_type"] == "NoSuchMethod"
    assert outcomes["direct"] == {"result": "rf-2"}
    assert sorted(records) == ["cast-from-oslo", "fanout-from-oslo", "fanout-from-oslo"]


# -- a dropped connection --------------------------------------------------------------------


async def _drop_connections() -> None:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "close_all_connections", "rpcframe aio test",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert await proc.wait() == 0


def test_a_server_consumes_again_after_the_broker_drops_its_connection(conf, names):
    async def main():
        async with Rig(conf, names[1], "s1") as rig:
            assert await rig.client.call(CTXT, "aadd", a=1, b=1) == 2
            before = rig.generation
            await _drop_connections()
            assert await rig.client.call(CTXT, "aadd", a=2, b=2) == 4
            assert await rig.client.prepare(server="s1").call(CTXT, "whoami") == "s1"
            assert rig.generation > before

    run(main())


def test_a_stream_completes_in_order_across_a_dropped_connection(conf, names):
    total = 400

    async def main():
        async with Rig(conf, names[1], "s1") as rig:
            before = rig.generation
            got = []
            async with await rig.client.stream(CTXT, "count", n=total, window=8) as chunks:
                async for chunk in chunks:
                    got.append(chunk["i"])
                    if len(got) == 100:
                        await _drop_connections()
            assert rig.generation > before
            return got

    assert run(main()) == list(range(total))


def test_a_server_serves_again_soon_after_a_blackhole_longer_than_the_heartbeat_timeout(
    conf, names
):
    threshold, outage = 2, 6.0

    async def main():
        client_transport = rpcframe.aio.get_rpc_transport(conf, brokers.RABBIT_URL)
        try:
            with TcpProxy((brokers.RABBIT_HOST, brokers.RABBIT_PORT)) as proxy:
                url = proxy.url() + f"?heartbeat_timeout_threshold={threshold}"
                async with Rig(conf, names[1], "s1", url=url) as rig:
                    client = rpcframe.aio.get_rpc_client(
                        client_transport, rpcframe.Target(topic=names[1]), timeout=1
                    )
                    assert await client.call(CTXT, "aadd", a=1, b=1) == 2
                    before = rig.generation
                    silent = rig.transport._driver._link._conn
                    proxy.blackhole()
                    started = time.monotonic()
                    # Nothing passes, not even the broker closing its end: only the
                    # missed heartbeats can tell the server its connection is gone.
                    with pytest.raises(protocol.ConnectionLost, match="heartbeats missed"):
                        await asyncio.wait_for(asyncio.shield(silent.closing), 3 * threshold)
                    # The rest of the outage: waiting it out is what is tested.
                    await asyncio.sleep(max(0.0, outage - (time.monotonic() - started)))
                    proxy.resume()
                    healed = time.monotonic()
                    answer = None
                    while answer is None and time.monotonic() < healed + 2 * threshold:
                        with contextlib.suppress(rpcframe.MessagingTimeout):
                            answer = await client.call(CTXT, "aadd", a=2, b=2)
                    took = time.monotonic() - healed
                    assert answer == 4, f"no answer {took:.1f} s after the network healed"
                    assert rig.generation > before  # the silent connection was given up
                    for i in range(20):
                        assert await client.call(CTXT, "aadd", a=i, b=0) == i
        finally:
            await client_transport.cleanup()

    run(main())


# -- sending and receiving at the driver level -----------------------------------------------


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_send_to_an_unreachable_broker_ends_at_its_timeout(conf, names):
    url = f"rabbit://guest:guest@127.0.0.1:{_unused_port()}/"

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, url)
        try:
            started = time.monotonic()
            with pytest.raises(rpcframe.MessagingTimeout):
                await transport._driver.send(base.Address(*names), b"{}", timeout=1.5)
            assert 1.5 <= time.monotonic() - started < 5
        finally:
            await transport.cleanup()

    run(main())


def test_a_send_without_retries_fails_after_one_attempt(conf, names):
    url = f"rabbit://guest:guest@127.0.0.1:{_unused_port()}/"

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, url)
        try:
            with pytest.raises(rpcframe.MessageDeliveryFailure, match="1 attempt"):
                await transport._driver.send(base.Address(*names), b"{}", retry=0, timeout=WAIT)
        finally:
            await transport.cleanup()

    run(main())


def test_closing_a_listener_gives_back_what_it_did_not_hand_out(conf, names):
    exchange, topic = names
    address = base.Address(exchange, topic)

    async def main():
        transport = rpcframe.aio.get_rpc_transport(conf, brokers.RABBIT_URL)
        driver = transport._driver
        try:
            first = await driver.listen([address])
            for n in range(5):
                await driver.send(address, f"m{n}".encode(), timeout=WAIT)
            taken = await first.poll(WAIT)
            assert taken is not None
            taken.ack()
            first.close()
            assert await first.poll(0) is None
            second = await driver.listen([address])
            rest = [await second.poll(WAIT) for _ in range(4)]
            assert all(message is not None for message in rest)
            for message in rest:
                message.ack()
            second.close()
            return taken.body, sorted(message.body for message in rest)
        finally:
            await transport.cleanup()

    taken, rest = run(main())
    assert taken == b"m0"
    assert rest == [b"m1", b"m2", b"m3", b"m4"]


# -- TLS -------------------------------------------------------------------------------------


def _tls_conf(conf: Any, pki: Any, trust: bool = True) -> Any:
    group = "oslo_messaging_rabbit"
    conf.register_opts(rpcframe.opts.rabbit_opts, group=group)
    conf.set_override("ssl", True, group)
    if trust:
        conf.set_override("ssl_ca_file", str(pki.ca), group)
    conf.set_override("ssl_cert_file", str(pki.client_cert), group)
    conf.set_override("ssl_key_file", str(pki.client_key), group)
    return conf


@pytest.fixture
def tls_proxy(tmp_path: Any) -> Iterator[tuple[Any, Any]]:
    brokers.require_rabbitmq()
    tls = pytest.importorskip("tests.functional.tls")
    pki = tls.make_pki(tmp_path)
    with tls.TlsProxy(pki, (brokers.RABBIT_HOST, brokers.RABBIT_PORT)) as proxy:
        yield pki, proxy


def test_asyncio_calls_work_over_verified_tls(conf, names, tls_proxy):
    pki, proxy = tls_proxy
    url = f"rabbit://guest:guest@localhost:{proxy.port}/"

    async def main():
        async with Rig(_tls_conf(conf, pki), names[1], "s1", url=url) as rig:
            assert await rig.client.call(CTXT, "aadd", a=2, b=3) == 5

    run(main())
    assert proxy.relayed >= 1


def test_a_broker_certificate_no_trusted_ca_signed_is_refused_at_once(conf, names, tls_proxy):
    pki, proxy = tls_proxy
    url = f"rabbit://guest:guest@localhost:{proxy.port}/"

    async def main():
        transport = rpcframe.aio.get_rpc_transport(_tls_conf(conf, pki, trust=False), url)
        try:
            started = time.monotonic()
            with pytest.raises(rpcframe.exceptions.AuthenticationError, match="TLS certificate"):
                await transport._driver.send(base.Address(*names), b"{}", timeout=WAIT)
            assert time.monotonic() - started < 5
        finally:
            await transport.cleanup()

    run(main())
