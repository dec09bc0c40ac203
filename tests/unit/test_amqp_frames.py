"""The RabbitMQ driver's frame reader, on frames built byte by byte."""

from __future__ import annotations

import struct

import amqp
import amqp.exceptions
import pytest
from amqp import serialization

from rpcframe.drivers.amqp import frames


def frame(kind, channel, payload, end=0xCE):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + bytes([end])


def deliver(channel, tag, consumer_tag="amq.ctag-1"):
    arguments = serialization.dumps("sLbss", (consumer_tag, tag, False, "openstack", "topic"))
    return frame(1, channel, struct.pack(">HH", 60, 60) + arguments)


def header(channel, size, properties=b"\x00\x00"):
    """A content header; ``properties``: encoded flags and properties (none by default)."""
    return frame(2, channel, struct.pack(">HHQ", 60, 0, size) + properties)


def kombu_properties(**headers):
    """The properties kombu sends: JSON, UTF-8 and a headers table (empty unless given)."""
    message = amqp.Message(
        b"",
        content_type="application/json",
        content_encoding="utf-8",
        application_headers=headers,
        delivery_mode=2,
        priority=0,
    )
    return message._serialize_properties()


def body(channel, data):
    return frame(3, channel, data)


def confirm(channel, tag, multiple=False, nack=False):
    method = 120 if nack else 80
    return frame(1, channel, struct.pack(">HHQB", 60, method, tag, int(multiple)))


class Inbound:
    """The reader's seam to py-amqp (:class:`pyamqp.Inbound`): a buffer fed by chunks."""

    def __init__(self, *chunks):
        self.buffer = b""
        self.chunks = list(chunks)
        self.reads = 0
        self.frames_counted = 0
        self.passed_on = []
        self.is_closed = False
        self.handler = None

    def intercept(self, handler):
        self.handler = handler
        return self.py_amqp

    def py_amqp(self, frame):
        self.passed_on.append(frame)

    def buffered(self):
        return self.buffer

    def keep(self, rest):
        self.buffer = rest

    def read(self, need):
        while len(self.buffer) < need:
            if not self.chunks:
                raise TimeoutError("nothing more to read")
            self.reads += 1
            self.buffer += self.chunks.pop(0)

    def closed(self):
        return self.is_closed

    def received(self, frames):
        self.frames_counted += frames


def reader_for(inbound):
    reader = frames.FrameReader(inbound)
    got = {"deliveries": [], "acks": [], "nacks": []}
    got["headers"] = []

    def on_delivery(tag, data, headers):
        got["deliveries"].append((tag, data))
        got["headers"].append(headers)

    reader.on_delivery(1, on_delivery)
    reader.on_confirm(
        2,
        lambda tag, multiple: got["acks"].append((tag, multiple)),
        lambda tag, multiple: got["nacks"].append((tag, multiple)),
    )
    return reader, got


def test_deliveries_and_confirms_are_handled_without_py_amqp():
    inbound = Inbound(
        deliver(1, 7)
        + header(1, 5)
        + body(1, b"hello")
        + confirm(2, 3)
        + confirm(2, 9, multiple=True)
        + confirm(2, 10, nack=True)
    )
    reader, got = reader_for(inbound)
    assert reader.pump() == 6
    assert got == {
        "deliveries": [(7, b"hello")],
        "headers": [None],
        "acks": [(3, False), (9, True)],
        "nacks": [(10, False)],
    }
    assert inbound.passed_on == []
    assert inbound.frames_counted == 6  # heartbeat bookkeeping sees every frame
    assert inbound.buffer == b""


def test_the_empty_headers_table_kombu_always_sends_is_no_headers():
    inbound = Inbound(deliver(1, 3) + header(1, 2, kombu_properties()) + body(1, b"{}"))
    reader, got = reader_for(inbound)
    reader.pump()
    assert got["deliveries"] == [(3, b"{}")]
    assert got["headers"] == [None]


def test_application_headers_reach_the_handler():
    properties = kombu_properties(compression="application/x-gzip", **{"x-stream-offset": 41})
    inbound = Inbound(deliver(1, 4) + header(1, 1, properties) + body(1, b"z"))
    reader, got = reader_for(inbound)
    reader.pump()
    assert got["headers"] == [{"compression": "application/x-gzip", "x-stream-offset": 41}]


def test_headers_are_found_without_content_type_or_encoding():
    properties = amqp.Message(b"", application_headers={"x-stream-offset": 0})
    inbound = Inbound(deliver(1, 5) + header(1, 0, properties._serialize_properties()))
    reader, got = reader_for(inbound)
    reader.pump()
    assert got["headers"] == [{"x-stream-offset": 0}]


def test_a_headers_table_that_cannot_be_decoded_counts_as_none():
    # flags: headers only; a table claiming 200 bytes holding one bad field
    properties = struct.pack(">HI", 1 << 13, 200) + b"\x01kZ" + b"\x00" * 197
    inbound = Inbound(deliver(1, 6) + header(1, 2, properties) + body(1, b"ok"))
    reader, got = reader_for(inbound)
    reader.pump()
    assert got["deliveries"] == [(6, b"ok")]
    assert got["headers"] == [None]


def test_a_body_in_several_frames_and_an_empty_body():
    inbound = Inbound(
        deliver(1, 1)
        + header(1, 6)
        + body(1, b"abc")
        + body(1, b"def")
        + deliver(1, 2)
        + header(1, 0)
    )
    reader, got = reader_for(inbound)
    reader.pump()
    assert got["deliveries"] == [(1, b"abcdef"), (2, b"")]


def test_other_frames_and_other_channels_go_to_py_amqp_in_order():
    heartbeat = frame(8, 0, b"")
    unknown_channel = deliver(5, 1) + header(5, 2) + body(5, b"hi")
    other_method = frame(1, 1, struct.pack(">HH", 60, 31) + b"\x05ctag1")  # basic.consume-ok
    inbound = Inbound(
        heartbeat + unknown_channel + other_method + deliver(1, 4) + header(1, 1) + body(1, b"x")
    )
    reader, got = reader_for(inbound)
    reader.pump()
    assert [kind for kind, _channel, _payload in inbound.passed_on] == [8, 1, 2, 3, 1]
    assert inbound.passed_on[2] == (2, 5, struct.pack(">HHQH", 60, 0, 2, 0))
    assert got["deliveries"] == [(4, b"x")]


def test_a_partial_frame_waits_in_the_buffer_for_the_rest():
    whole = deliver(1, 8) + header(1, 4) + body(1, b"data")
    cut = len(whole) - 3
    inbound = Inbound(whole[:cut], whole[cut:])
    reader, got = reader_for(inbound)
    assert reader.pump() == 2  # method and header; the body is incomplete
    assert got["deliveries"] == []
    assert inbound.buffer == body(1, b"data")[:-3]
    assert reader.pump() == 1  # reads the rest
    assert got["deliveries"] == [(8, b"data")]


def test_a_frame_arriving_in_pieces_is_read_until_whole():
    whole = confirm(2, 11)
    inbound = Inbound(whole[:3], whole[3:9], whole[9:])
    reader, got = reader_for(inbound)
    assert reader.pump() == 1
    assert got["acks"] == [(11, False)]
    assert inbound.reads == 3


def test_a_late_frame_leaves_what_was_read_buffered():
    whole = confirm(2, 12)
    inbound = Inbound(whole[:5])
    reader, got = reader_for(inbound)
    with pytest.raises(TimeoutError):
        reader.pump()
    assert inbound.buffer == whole[:5]
    inbound.chunks.append(whole[5:])
    assert reader.pump() == 1
    assert got["acks"] == [(12, False)]


def test_a_bad_frame_end_is_an_unexpected_frame():
    inbound = Inbound(confirm(2, 1)[:-1] + b"\x00")
    reader, _got = reader_for(inbound)
    with pytest.raises(amqp.exceptions.UnexpectedFrame, match="0x00"):
        reader.pump()


def test_reading_stops_when_a_frame_closes_the_connection():
    class Closing(Inbound):
        def py_amqp(self, frame):
            super().py_amqp(frame)
            self.is_closed = True

    inbound = Closing(frame(1, 0, struct.pack(">HH", 10, 50)) + confirm(2, 1))
    reader, got = reader_for(inbound)
    assert reader.pump() == 1
    assert got["acks"] == []


def test_a_delivery_split_between_the_reader_and_py_amqp_still_arrives():
    # The method frame read by pump(); the rest read by one of py-amqp's own
    # synchronous calls, which hands frames to the intercepting handler.
    inbound = Inbound(deliver(1, 21))
    reader, got = reader_for(inbound)
    reader.pump()
    inbound.handler((2, 1, header(1, 2)[7:-1]))
    inbound.handler((3, 1, body(1, b"ok")[7:-1]))
    inbound.handler((8, 0, b""))
    assert got["deliveries"] == [(21, b"ok")]
    assert [kind for kind, _channel, _payload in inbound.passed_on] == [8]
    assert inbound.frames_counted == 3  # py-amqp counts the heartbeat itself


class _Written:
    """A py-amqp connection and transport that keep what frame_writer writes."""

    def __init__(self, frame_max):
        self.frame_max = frame_max
        self.bytes_sent = 0
        self.data = b""

    def write(self, data):
        self.data += bytes(data)


@pytest.mark.parametrize("size", [0, 100, 10_000], ids=["empty", "small", "several frames"])
def test_a_publish_encoded_whole_is_what_py_amqp_would_write(size):
    from amqp.method_framing import frame_writer

    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    arguments = frames.publish_arguments("", "reply_abc", False)
    properties = frames.encode_properties()
    py_amqp = _Written(frame_max=4096)
    frame_writer(py_amqp, py_amqp)(
        1, 3, frames._PUBLISH, arguments, frames.Outgoing(payload, properties)
    )
    assert frames.encode_publish(3, arguments, properties, payload, 4096) == py_amqp.data
