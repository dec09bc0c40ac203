"""The asyncio driver's AMQP protocol against a scripted broker: frames in, frames out.

No broker: a fake transport records what the client writes, and the test
feeds the broker's frames to ``data_received`` (whole, or in pieces as TCP
may cut them).
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

pytest.importorskip("amqp")

from rpcframe.drivers.amqp import frames, pyamqp
from rpcframe.drivers.amqp.aio import protocol

WAIT = 5.0


class FakeTransport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def frames(self) -> list[tuple[int, int, bytes]]:
        """Every frame written since the last call (the protocol header skipped)."""
        buf = bytes(self.written)
        self.written.clear()
        if buf.startswith(protocol.PROTOCOL_HEADER):
            buf = buf[len(protocol.PROTOCOL_HEADER) :]
        found, pos = [], 0
        while pos < len(buf):
            kind, channel, size = struct.unpack_from(">BHI", buf, pos)
            found.append((kind, channel, buf[pos + 7 : pos + 7 + size]))
            assert buf[pos + 7 + size] == 0xCE
            pos += 8 + size
        return found


def method(channel: int, class_id: int, method_id: int, kinds: str = "", *values: Any) -> bytes:
    payload = struct.pack(">HH", class_id, method_id) + pyamqp.encode(kinds, values)
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


def content(channel: int, body: bytes, properties: bytes) -> bytes:
    header = struct.pack(">HHQ", 60, 0, len(body)) + properties
    out = struct.pack(">BHI", 2, channel, len(header)) + header + b"\xce"
    return out + struct.pack(">BHI", 3, channel, len(body)) + body + b"\xce"


def methods(written: list[tuple[int, int, bytes]]) -> list[tuple[int, int, int]]:
    """(channel, class, method) of each method frame written."""
    return [(ch, *struct.unpack_from(">HH", p)) for kind, ch, p in written if kind == 1]


START = method(0, 10, 10, "ooFSS", 0, 9, {"product": "RabbitMQ"}, "AMQPLAIN PLAIN", "en_US")
TUNE = method(0, 10, 30, "BlB", 2047, 131072, 60)
OPEN_OK = method(0, 10, 41, "s", "")


async def opened(handshake: list[Any] | None = None) -> tuple[protocol.Connection, FakeTransport]:
    """An open connection; the frames of the handshake go to ``handshake``."""
    loop = asyncio.get_running_loop()
    conn = protocol.Connection(
        loop, "test", protocol.login("AMQPLAIN", "guest", "secret"), "/", heartbeat=0
    )
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(START + TUNE + OPEN_OK)
    await asyncio.wait_for(conn._opened, WAIT)
    written = transport.frames()
    if handshake is not None:
        handshake.extend(written)
    return conn, transport


async def channel_of(conn: protocol.Connection, transport: FakeTransport, confirms: bool = False):
    task = asyncio.ensure_future(conn.channel(confirms=confirms))
    await asyncio.sleep(0)  # the task writes channel.open
    conn._flush()
    (number, _, _), *_ = methods(transport.frames())
    conn.data_received(method(number, 20, 11, "S", ""))
    if confirms:
        await asyncio.sleep(0)
        conn._flush()
        transport.frames()
        conn.data_received(method(number, 85, 11))
    return await asyncio.wait_for(task, WAIT)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_handshake_logs_in_tunes_and_opens_the_virtual_host():
    async def main():
        written: list[Any] = []
        conn, _ = await opened(written)
        assert methods(written) == [(0, 10, 11), (0, 10, 31), (0, 10, 40)]
        start_ok = written[0][2]
        (properties, mechanism, response, _), _ = pyamqp.decode("FsSs", start_ok, 4)
        assert mechanism == "AMQPLAIN"
        assert properties["capabilities"]["consumer_cancel_notify"] is True
        assert properties["connection_name"] == "test"
        login = pyamqp.decode_table(struct.pack(">I", len(response)) + response.encode(), 0)
        assert login == {"LOGIN": "guest", "PASSWORD": "secret"}
        assert not conn.is_closed

    run(main())


def test_a_login_method_the_broker_does_not_offer_is_refused_clearly():
    async def main():
        conn = protocol.Connection(
            asyncio.get_running_loop(), "test", protocol.login("EXTERNAL", "", ""), "/", 0
        )
        conn.connection_made(FakeTransport())
        conn.data_received(START)
        with pytest.raises(protocol.LoginRefused, match="does not offer login method EXTERNAL"):
            await conn._opened

    run(main())


def test_the_broker_closing_the_connection_during_login_is_a_refusal():
    async def main():
        conn = protocol.Connection(
            asyncio.get_running_loop(), "test", protocol.login("PLAIN", "guest", "x"), "/", 0
        )
        transport = FakeTransport()
        conn.connection_made(transport)
        conn.data_received(START + TUNE + method(0, 10, 50, "BsBB", 403, "ACCESS_REFUSED", 0, 0))
        with pytest.raises(protocol.LoginRefused, match="403 ACCESS_REFUSED"):
            await conn._opened
        assert (0, 10, 51) in methods(transport.frames())  # close-ok sent
        assert transport.aborted

    run(main())


def test_a_delivery_cut_anywhere_reaches_its_consumer_whole():
    properties = frames.encode_properties(
        headers=frames.encode_headers((("compression", "application/x-gzip"),))
    )

    async def main(cut: int) -> list[tuple[int, bytes, Any]]:
        conn, transport = await opened()
        channel = await channel_of(conn, transport)
        received: list[tuple[int, bytes, Any]] = []
        task = asyncio.ensure_future(
            channel.consume("q", lambda *delivery: received.append(delivery))
        )
        await asyncio.sleep(0)
        conn._flush()
        transport.frames()
        conn.data_received(method(channel.id, 60, 21, "s", "ignored"))
        tag = await task
        data = method(channel.id, 60, 60, "sLbss", tag, 7, False, "x", "rk")
        data += content(channel.id, b"hello world", properties)
        conn.data_received(data[:cut])
        conn.data_received(data[cut:])
        return received

    expected = [(7, b"hello world", {"compression": "application/x-gzip"})]
    for cut in range(0, 120, 7):
        assert run(main(cut)) == expected, f"cut at byte {cut}"


def test_a_body_in_several_frames_is_joined():
    async def main():
        conn, transport = await opened()
        channel = await channel_of(conn, transport)
        received: list[bytes] = []
        task = asyncio.ensure_future(channel.consume("q", lambda t, b, h: received.append(b)))
        await asyncio.sleep(0)
        conn.data_received(method(channel.id, 60, 21, "s", "x"))
        tag = await task
        header = struct.pack(">HHQ", 60, 0, 6) + frames.encode_properties()
        data = method(channel.id, 60, 60, "sLbss", tag, 1, False, "", "q")
        data += struct.pack(">BHI", 2, channel.id, len(header)) + header + b"\xce"
        for part in (b"ab", b"cd", b"ef"):
            data += struct.pack(">BHI", 3, channel.id, 2) + part + b"\xce"
        conn.data_received(data)
        return received

    assert run(main()) == [b"abcdef"]


def test_a_malformed_frame_ends_the_connection_with_the_reason():
    async def main():
        conn, transport = await opened()
        conn.data_received(b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x32\xff")
        assert transport.aborted
        with pytest.raises(protocol.ConnectionLost, match="malformed frame"):
            await conn.closing

    run(main())


def test_a_reply_nobody_asked_for_ends_the_connection():
    async def main():
        conn, transport = await opened()
        channel = await channel_of(conn, transport)
        conn.data_received(method(channel.id, 50, 11, "sll", "q", 0, 0))
        with pytest.raises(protocol.ConnectionLost, match="unexpected method 50.11"):
            await conn.closing
        assert channel.is_closed

    run(main())


def test_confirms_settle_each_publish_and_a_return_fails_only_its_own():
    async def main():
        conn, transport = await opened()
        channel = await channel_of(conn, transport, confirms=True)
        arguments = frames.publish_arguments("", "q", True)
        properties = frames.encode_properties()
        futures = [channel.publish(arguments, properties, b"m", tagged=True) for _ in range(4)]
        await asyncio.sleep(0)
        # The broker returns the third message (its tag is its message_id), then
        # confirms the first two at once, the last two at once.
        returned = frames.encode_properties(message_id="3")
        conn.data_received(
            method(channel.id, 60, 50, "Bsss", 312, "NO_ROUTE", "", "q")
            + content(channel.id, b"m", returned)
            + method(channel.id, 60, 80, "Lb", 2, True)
            + method(channel.id, 60, 80, "Lb", 4, True)
        )
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        return outcomes

    outcomes = run(main())
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    assert isinstance(outcomes[2], protocol.Returned)
    assert outcomes[2].code == 312


def test_a_nack_fails_the_publish():
    async def main():
        conn, transport = await opened()
        channel = await channel_of(conn, transport, confirms=True)
        future = channel.publish(frames.publish_arguments("", "q", False), b"\x00\x00", b"m")
        conn.data_received(method(channel.id, 60, 120, "Lbb", 1, False, False))
        with pytest.raises(protocol.Nacked):
            await future

    run(main())


def test_the_broker_closing_a_channel_fails_what_waits_on_it_with_its_reason():
    async def main():
        conn, transport = await opened()
        channel = await channel_of(conn, transport)
        declaring = asyncio.ensure_future(channel.queue_declare("q", durable=True))
        await asyncio.sleep(0)
        text = "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q'"
        conn.data_received(method(channel.id, 20, 40, "BsBB", 406, text, 50, 10))
        with pytest.raises(protocol.PreconditionFailed, match="inequivalent arg"):
            await declaring
        conn._flush()
        assert (channel.id, 20, 41) in methods(transport.frames())  # close-ok
        assert channel.id not in conn._channels  # its number is free again
        assert not conn.is_closed

    run(main())


def test_a_channel_abandoned_while_opening_keeps_its_number_until_the_broker_closes_it():
    async def main():
        conn, transport = await opened()
        task = asyncio.ensure_future(conn.channel())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        conn._flush()
        sent = methods(transport.frames())
        assert sent == [(1, 20, 10), (1, 20, 40)]  # open, then close at once
        second = asyncio.ensure_future(conn.channel())
        await asyncio.sleep(0)
        conn._flush()
        assert methods(transport.frames()) == [(2, 20, 10)]  # not number 1 again
        conn.data_received(method(1, 20, 11, "S", "") + method(1, 20, 41))
        conn.data_received(method(2, 20, 11, "S", ""))
        assert (await second).id == 2
        assert 1 not in conn._channels
        assert not conn.is_closed

    run(main())


def test_a_silent_broker_is_given_up_after_the_heartbeat_interval():
    async def main():
        loop = asyncio.get_running_loop()
        conn = protocol.Connection(loop, "test", protocol.login("PLAIN", "g", "g"), "/", 1)
        transport = FakeTransport()
        conn.connection_made(transport)
        conn.data_received(START + method(0, 10, 30, "BlB", 2047, 131072, 60) + OPEN_OK)
        assert conn.heartbeat == 1  # the smaller of the two
        started = loop.time()
        with pytest.raises(protocol.ConnectionLost, match="heartbeats missed"):
            await asyncio.wait_for(asyncio.shield(conn.closing), WAIT)
        assert loop.time() - started >= 0.9  # not before the interval
        assert any(kind == 8 for kind, _, _ in transport.frames())  # it beat meanwhile

    run(main())
