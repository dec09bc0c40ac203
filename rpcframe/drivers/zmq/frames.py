"""The driver's own framing: what travels beside a message body between two processes.

A message is two ZeroMQ frames, ``[header, body]``: the body exactly as the
core encoded it (the driver never reads it), and a header of the driver's
own. The receiving process answers every message with one acknowledgement
frame. Both are NUL-separated UTF-8 fields after a magic word carrying the
frame type and framing version:

* ``RPZ1D\\0<msg id>\\0<kind>\\0<exchange>\\0<topic>\\0<server>\\0<fanout>\\0<pool>\\0<quiet>``
  ``\\0<answers>`` (a delivery: ``kind`` is ``rpc``, ``notify`` or ``reply``; ``server`` and
  ``pool`` may be empty; ``fanout`` and ``quiet`` are ``1`` or empty;
  ``answers``, on the reply that ends a call, is the id of the call's
  request, else empty);
* ``RPZ1A\\0<msg id>\\0<status>\\0<detail>`` (an acknowledgement: ``ok``,
  ``noroute`` when nothing in that process listens on the address, ``bad``
  when the frames were malformed; ``detail`` says why).

The message id is the sender's (32 hexadecimal digits, random): a sender
that heard no acknowledgement sends the same id again and the receiver,
which remembers recent ids, acknowledges the copy without delivering it.

A *quiet* delivery (a call request, a stream's chunk: what the sender does
not wait for) is acknowledged only when it is refused (``noroute``,
``bad``); it is never sent again, so the receiver need not remember its id.
Taken, it costs one message, not two. The caller's process keeps a call's
request (for the refusal, or to fail the call at once if the server's
process goes) until the reply that ``answers`` it arrives.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import zmq

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.wire import envelope

__all__ = [
    "BAD",
    "NOROUTE",
    "NOBLOCK",
    "OK",
    "POLLIN",
    "Ack",
    "Header",
    "decode_ack",
    "decode_header",
    "encode_ack",
    "encode_header",
    "msg_id_of",
    "new_msg_id",
    "readable",
    "recv_parts",
    "send_parts",
]

_DELIVERY = b"RPZ1D"
_DELIVERY_PREFIX = _DELIVERY + b"\0"
_ACK = b"RPZ1A"
OK, NOROUTE, BAD = "ok", "noroute", "bad"
_STATUSES = (OK, NOROUTE, BAD)
_MAX_HEADER = 64 * 1024


# Plain ints: pyzmq's flag enums cost more to combine and convert than the
# system calls they stand for.
_EVENTS = int(zmq.EVENTS)
POLLIN = int(zmq.POLLIN)
_RCVMORE = int(zmq.RCVMORE)
NOBLOCK = int(zmq.NOBLOCK)
_MORE = int(zmq.SNDMORE | zmq.NOBLOCK)


def readable(sock: Any) -> bool:
    """Whether ``sock`` has a message to read now.

    Asked before each read of a batch: a read that finds nothing raises
    ``zmq.Again``, and raising costs more than asking.
    """
    return bool(sock.getsockopt(_EVENTS) & POLLIN)


def send_parts(sock: Any, parts: list[bytes]) -> None:
    """Send ``parts`` as one message without blocking (``zmq.Again`` if it cannot go now).

    Copied, never zero-copy: pyzmq frees zero-copy buffers from a thread of
    its own that blocks in a native call, which in an eventlet-patched
    process is a green thread and would stop the hub.
    """
    last = len(parts) - 1
    for i, part in enumerate(parts):
        sock.send(part, NOBLOCK if i == last else _MORE)


def recv_parts(sock: Any) -> tuple[Any, list[bytes]]:
    """The next message of a readable ``sock``: its first frame, and its parts as bytes.

    The first frame (a ``zmq.Frame``) still knows where the message came
    from (``frame.get("Peer-Address")``), for the log.
    """
    first = sock.recv(NOBLOCK, copy=False)
    parts = [first.bytes]
    while sock.getsockopt(_RCVMORE):
        parts.append(sock.recv(NOBLOCK))
    return first, parts


def new_msg_id() -> str:
    """A fresh 32-hex-digit id for a message on the wire (what duplicates are told by).

    The envelope's ids: a random per-process prefix and a counter, unique as
    uuid4 where it matters here (no two messages of the process share one,
    nor two processes' messages) and several times cheaper.
    """
    return envelope.new_id()


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    msg_id: str
    kind: str
    exchange: str
    topic: str
    server: str
    fanout: bool
    pool: str
    quiet: bool = False
    answers: str = ""  # the request a call's last reply answers (its msg id)


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    msg_id: str
    status: str
    detail: str


def encode_header(header: Header) -> bytes:
    fields = (
        header.msg_id,
        header.kind,
        header.exchange,
        header.topic,
        header.server,
        "1" if header.fanout else "",
        header.pool,
        "1" if header.quiet else "",
        header.answers,
    )
    joined = "\0".join(fields)
    if joined.count("\0") != len(fields) - 1:
        value = next(value for value in fields if "\0" in value)
        raise exceptions.InvalidTarget(
            f"a name sent over ZeroMQ cannot contain NUL: {value!r}", None
        )
    return _DELIVERY_PREFIX + joined.encode()


def decode_header(frame: bytes) -> Header:
    """Parse a delivery header; MalformedMessage saying what is wrong."""
    if len(frame) > _MAX_HEADER:
        raise exceptions.MalformedMessage(f"delivery header of {len(frame)} bytes")
    if not frame.startswith(_DELIVERY_PREFIX):
        raise exceptions.MalformedMessage(f"not a delivery header (starts {frame[:8]!r})")
    try:
        # One decode for every field: a NUL byte never falls inside a UTF-8 sequence.
        parts = frame[len(_DELIVERY_PREFIX) :].decode().split("\0")
    except UnicodeDecodeError:
        raise exceptions.MalformedMessage("delivery header is not UTF-8") from None
    if len(parts) != 9:
        raise exceptions.MalformedMessage(f"delivery header has {len(parts)} fields, not 9")
    msg_id, kind, exchange, topic, server, fanout, pool, quiet, answers = parts
    if (
        len(msg_id) != 32
        or kind not in base.KINDS
        or not topic
        or fanout not in ("", "1")
        or quiet not in ("", "1")
        or len(answers) not in (0, 32)
    ):
        raise exceptions.MalformedMessage(f"delivery header fields are invalid: {frame[:200]!r}")
    return Header(msg_id, kind, exchange, topic, server, fanout == "1", pool, quiet == "1", answers)


def msg_id_of(frame: bytes) -> str | None:
    """The message id of a header too broken to parse, if it can be read (to refuse it)."""
    parts = frame[:200].split(b"\0")
    if len(parts) > 1 and parts[0] == _DELIVERY and len(parts[1]) == 32:
        try:
            return parts[1].decode("ascii")
        except UnicodeDecodeError:
            return None
    return None


def encode_ack(msg_id: str, status: str, detail: str = "") -> bytes:
    return b"\0".join((_ACK, msg_id.encode(), status.encode(), detail.replace("\0", " ").encode()))


def decode_ack(frame: bytes) -> Ack:
    parts = frame.split(b"\0")
    if len(parts) != 4 or parts[0] != _ACK:
        raise exceptions.MalformedMessage(f"not an acknowledgement: {frame[:100]!r}")
    try:
        msg_id, status, detail = (p.decode() for p in parts[1:])
    except UnicodeDecodeError:
        raise exceptions.MalformedMessage("acknowledgement is not UTF-8") from None
    if status not in _STATUSES:
        raise exceptions.MalformedMessage(f"unknown acknowledgement status {status!r}")
    return Ack(msg_id, status, detail)
