"""A lost ZeroMQ peer: what was on its connection, and how loudly the log says so."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from rpcframe.drivers.zmq import frames
from rpcframe.drivers.zmq.matchmaker import StaticMatchmaker
from rpcframe.drivers.zmq.node import Watched
from rpcframe.drivers.zmq.peers import Outgoing, Peer, Peers

LOST = "the connection to tcp://127.0.0.1:1 was lost (the process exited)"


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.term()


def _peers(ctx: zmq.Context) -> tuple[Peers, Peer]:
    watched = Watched()
    peers = Peers(None, ctx.socket, watched, StaticMatchmaker([]), lambda name, body: False)  # type: ignore[arg-type]
    sock, monitor = ctx.socket(zmq.DEALER), ctx.socket(zmq.PAIR)
    sock.linger = monitor.linger = 0
    peer = Peer("tcp://127.0.0.1:1", sock, monitor, time.monotonic() + 10)
    peer.up = True
    peers.by_endpoint[peer.endpoint] = peer
    peers.by_socket[sock] = peer
    peers.by_monitor[monitor] = peer
    watched.register(sock)
    watched.register(monitor)
    return peers, peer


def _reply(done: list[Any], msg_id: str = "a" * 32) -> Outgoing:
    header = frames.Header(msg_id, "reply", "", "reply_x@tcp://127.0.0.1:1", "", False, "")
    return Outgoing(
        header, b"{}", ["tcp://127.0.0.1:1"], "r", 0, time.monotonic() + 10, False, None,
        done.append,
    )  # fmt: skip


def test_a_peer_lost_with_nothing_of_ours_on_it_is_logged_at_info(ctx, caplog):
    peers, peer = _peers(ctx)
    with caplog.at_level(logging.DEBUG, logger="rpcframe.drivers.zmq"):
        peers._peer_down(peer, LOST)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.INFO, f"ZeroMQ: {LOST}")
    ]
    assert peer.endpoint not in peers.by_endpoint


def test_a_peer_lost_with_a_message_awaiting_its_acknowledgement_is_a_warning(ctx, caplog):
    peers, peer = _peers(ctx)
    done: list[Outgoing] = []
    reply = _reply(done)
    peer.inflight[reply.msg_id] = reply
    with caplog.at_level(logging.DEBUG, logger="rpcframe.drivers.zmq"):
        peers._peer_down(peer, LOST)
    assert (logging.WARNING, f"ZeroMQ: {LOST}") in [
        (r.levelno, r.getMessage()) for r in caplog.records
    ]
    assert done == [reply] and reply.status != frames.OK  # nowhere else to go: it failed


def test_what_a_lost_peer_acknowledged_before_it_went_counts_as_delivered(ctx, caplog):
    peers, peer = _peers(ctx)
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        peer.sock.connect(f"tcp://127.0.0.1:{port}")
        done: list[Outgoing] = []
        reply = _reply(done)
        peer.inflight[reply.msg_id] = reply
        peer.sock.send(b"hello")
        assert router.poll(5000), "the router got nothing"
        identity, _ = router.recv_multipart()
        router.send_multipart([identity, frames.encode_ack(reply.msg_id, frames.OK)])
        assert peer.sock.poll(5000), "the acknowledgement never came"
        # The news of the loss is read before the acknowledgement waiting on the socket.
        with caplog.at_level(logging.DEBUG, logger="rpcframe.drivers.zmq"):
            peers._peer_down(peer, LOST)
    finally:
        router.close(0)
    assert done == [reply] and reply.status == frames.OK
    assert [r.levelno for r in caplog.records] == [logging.INFO]
