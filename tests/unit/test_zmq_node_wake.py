"""A sender's write and the node's loop: the news a write takes is passed on to the loop.

A ZeroMQ socket's descriptor is edge-triggered, and any use of the socket
may take its news: a sender that writes to a connection on which an
acknowledgement has just arrived takes the news the sleeping loop was
waiting for. The sender must then wake the loop, or the acknowledgement
stays unread. The loop is not started here, so that nothing else reads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from rpcframe import handoffs
from rpcframe.drivers.zmq import frames
from rpcframe.drivers.zmq.driver import _Batch
from rpcframe.drivers.zmq.listener import Delivery, Mailbox, ZmqListener
from rpcframe.drivers.zmq.matchmaker import StaticMatchmaker
from rpcframe.drivers.zmq.node import _CANDIDATES, Node, Outgoing, Settings
from rpcframe.drivers.zmq.routing import record_of

WAIT_MS = 5000


class _StillNode(Node):
    """A node whose loop never runs: the test reads what the loop would."""

    def _start(self) -> None:
        self.wakes = 0

    def _wake(self) -> None:
        self.wakes += 1


def _settings() -> Settings:
    return Settings(
        bind_address="127.0.0.1", host="127.0.0.1", min_port=49153, max_port=65535,
        port_retries=100, static_binds=(), linger=0.0, heartbeat_interval=0.0,
        heartbeat_timeout=0.0, connect_timeout=10.0, ack_timeout=10.0, copy_window=30.0,
        curve=None, matchmaker_key=("test",),
    )  # fmt: skip


@pytest.fixture
def peer() -> Iterator[tuple[Any, str]]:
    """A raw ROUTER standing for the peer process."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.linger = 0
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield router, f"tcp://127.0.0.1:{port}"
    router.close(0)
    ctx.term()


def _cast(endpoint: str, done: list[Outgoing]) -> Outgoing:
    header = frames.Header(frames.new_msg_id(), "rpc", "openstack", "t", "", False, "")
    return Outgoing(
        header, b"{}", [endpoint], "r", 0, time.monotonic() + 30, False, None, done.append
    )


def _connect(node: Node, endpoint: str) -> Any:
    """Connect to ``endpoint`` as the loop would: until the handshake's news is read."""
    peer = node.peers._peer(endpoint)
    deadline = time.monotonic() + WAIT_MS / 1000
    while not peer.up and time.monotonic() < deadline:
        if peer.monitor.poll(WAIT_MS):
            node.peers.on_monitor(peer)
    assert peer.up, "no connection to the raw peer"
    return peer.sock


class _Connected:
    """A node whose loop never runs, connected to the raw peer; a cast ready to send."""

    def __init__(self, router: Any, endpoint: str) -> None:
        self.router, self.endpoint = router, endpoint
        self.node = _StillNode(_settings(), StaticMatchmaker([]))
        self.done: list[Outgoing] = []
        self.first = _cast(endpoint, self.done)
        self.sock = _connect(self.node, endpoint)

    def acknowledged(self) -> None:
        """Send the first cast; the raw peer's acknowledgement arrives on the connection."""
        self.node.send([self.first])
        assert self.router.poll(WAIT_MS), "the peer got nothing"
        identity, _, _ = self.router.recv_multipart()
        self.router.send_multipart([identity, frames.encode_ack(self.first.msg_id, frames.OK)])
        assert self.sock.poll(WAIT_MS), "the acknowledgement never arrived"

    def another(self) -> Outgoing:
        return _cast(self.endpoint, self.done)


@pytest.fixture
def connected(peer) -> Iterator[_Connected]:
    router, endpoint = peer
    made = _Connected(router, endpoint)
    try:
        yield made
    finally:
        made.node.peers.shutdown()
        made.node.finish_close()


def test_a_write_on_a_connection_holding_an_acknowledgement_wakes_the_loop(connected):
    node = connected.node
    connected.acknowledged()
    node._sleep_until = time.monotonic() + 1.0  # sooner than any acknowledgement's deadline
    woken = node.wakes
    node.send([connected.another()])  # this write may take the acknowledgement's news
    assert node.wakes == woken + 1
    node.peers.on_dealer(node.peers.by_socket[connected.sock])  # what the woken loop then does
    assert [o.status for o in connected.done] == [frames.OK]


def test_a_write_on_a_quiet_connection_leaves_the_loop_asleep(connected):
    node = connected.node
    node._sleep_until = time.monotonic() + 1.0  # the loop looks again within 1 s
    woken = node.wakes
    node.send([connected.another()])  # acknowledged within 10 s: nothing sooner
    assert connected.router.poll(WAIT_MS)
    assert node.wakes == woken  # nothing to read, nothing the loop must do sooner


def test_a_connection_whose_news_a_write_took_is_read_on_the_next_turn(connected):
    # The write took the descriptor's news: the loop's wait will not report
    # the connection, so the turn after it must ask that socket anyway.
    node = connected.node
    connected.acknowledged()
    node.send([connected.another()])
    with node._io_lock:
        node._read_all([])  # a wait that reported nothing
    assert [o.status for o in connected.done] == [frames.OK]


def test_a_turn_asks_only_the_sockets_that_may_hold_news(connected, monkeypatch):
    # A socket found empty, and not used since, signals its next news through
    # its descriptor: a turn asks it only when the wait reported it.
    node, sock = connected.node, connected.sock
    with node._io_lock:
        node._read_all(None)  # every socket asked once, and found empty
    asked: list[Any] = []
    real = frames.readable

    def counted(each: Any) -> bool:
        asked.append(each)
        return real(each)

    monkeypatch.setattr(frames, "readable", counted)
    with node._io_lock:
        node._read_all([])
    assert asked == []
    connected.acknowledged()  # the write asks the socket it wrote to (empty then)
    assert asked == [sock]
    asked.clear()
    with node._io_lock:
        node._read_all([])  # the wait did not report it: it is not asked
    assert (asked, connected.done) == ([], [])
    with node._io_lock:
        node._read_all([node._watched.by_sock[sock]])
    assert [o.status for o in connected.done] == [frames.OK]
    assert set(asked) == {sock}  # read, then found empty


def _woken_reader(node: Node, read: Any, beside: Any, what: str) -> None:
    """Run ``read()`` (it reads the node's sockets for its waiter) in a thread; once it
    waits on them, run ``beside()`` as the loop does when it reads beside the reader,
    and check that the reader was woken (``what``: by what)."""
    waiting = threading.Event()

    def hook(point: str) -> None:
        if point == "zmq.reader-unlocked":
            waiting.set()

    with handoffs.installed(hook):
        thread = threading.Thread(target=read)
        thread.start()
        assert waiting.wait(WAIT_MS / 1000), "the reader never waited on the sockets"
        with node._io_lock:
            beside()
            node._read_all()
        thread.join(WAIT_MS / 1000)
        assert not thread.is_alive(), f"the reader was not woken by {what}"


def test_a_delivery_by_another_thread_wakes_the_thread_reading_in_the_loops_place():
    # A poller that reads the node's sockets itself waits on their
    # descriptors. The loop may be reading beside it (it came back between
    # two readers) and put the poller's message in its mailbox: the loop then
    # drains the wake-up socket itself, so the reader must be woken by a
    # descriptor of its own. Here the loop's wake-ups go nowhere (a counter).
    node = _StillNode(_settings(), StaticMatchmaker([]))
    mailbox = Mailbox()
    got: list[Any] = []

    def reader() -> None:
        assert node.read_for(mailbox, time.monotonic() + 30)
        got.append(mailbox.take())

    def deliver() -> None:
        assert mailbox.put(Delivery(b"reply", "inbox"))

    try:
        _woken_reader(node, reader, deliver, "the delivery")
        assert [d.body for d in got] == [b"reply"]
        assert node.read_for(Mailbox(), time.monotonic()) is True  # the role was let go
    finally:
        node._stopping = True
        node.finish_close()


def test_a_reader_that_gives_up_hands_the_reading_role_to_a_blocked_poller():
    # A poller that found the role taken waits on its mailbox; when the
    # reader leaves without what it waited for (its deadline passed), that
    # poller is offered the role, and reads the node's sockets itself.
    node = _StillNode(_settings(), StaticMatchmaker([]))
    listener = ZmqListener(["inbox"], lambda _: None, lambda *_: 0, None, node.read_for)
    claims: list[int] = []
    claimed = [threading.Event(), threading.Event()]
    blocked = threading.Event()
    got: list[Any] = []

    def hook(point: str) -> None:
        if point == "zmq.claimed":
            claims.append(threading.get_ident())
            claimed[len(claims) - 1].set()
        elif point == "zmq.blocked":
            blocked.set()

    first = Mailbox()
    try:
        with handoffs.installed(hook):
            holder = threading.Thread(target=node.read_for, args=(first, None))
            holder.start()
            assert claimed[0].wait(WAIT_MS / 1000)
            poller = threading.Thread(target=lambda: got.append(listener.poll(30)))
            poller.start()
            assert blocked.wait(WAIT_MS / 1000), "the poller never waited on its mailbox"
            first.close()  # the holder leaves: what it waited for will never come
            holder.join(WAIT_MS / 1000)
            assert claimed[1].wait(WAIT_MS / 1000), "the blocked poller was not offered the role"
            assert claims == [holder.ident, poller.ident]
            listener.mailbox.put(Delivery(b"reply", "inbox"))  # as the loop would
            poller.join(WAIT_MS / 1000)
        assert not poller.is_alive()
        assert [d.body for d in got] == [b"reply"]
    finally:
        listener.mailbox.close()
        node._stopping = True
        node.finish_close()


def test_a_sender_reading_for_its_acknowledgements_is_woken_when_another_thread_finishes_them():
    # A cast's sender waits for its acknowledgement reading the node's
    # sockets itself; the loop, reading beside it, may take the
    # acknowledgement and finish the send: the sender must be woken.
    node = _StillNode(_settings(), StaticMatchmaker([]))
    batch = _Batch(1)
    waited: list[bool] = []
    try:
        _woken_reader(
            node,
            lambda: waited.append(batch.wait(node, 30)),
            lambda: batch.finished(object()),
            "its send finishing",
        )
        assert waited == [True]
    finally:
        node._stopping = True
        node.finish_close()


@contextlib.contextmanager
def _role_held() -> Iterator[Node]:
    """A node whose reading role another thread holds (it reads for a mailbox)."""
    node = _StillNode(_settings(), StaticMatchmaker([]))
    holder_mailbox = Mailbox()
    claimed = threading.Event()

    def hook(point: str) -> None:
        if point == "zmq.claimed":
            claimed.set()

    try:
        with handoffs.installed(hook):
            holder = threading.Thread(target=node.read_for, args=(holder_mailbox, None))
            holder.start()
            assert claimed.wait(WAIT_MS / 1000)
            yield node
            holder_mailbox.close()
            holder.join(WAIT_MS / 1000)
            assert not holder.is_alive()
    finally:
        node._stopping = True
        node.finish_close()


def test_a_sender_that_finds_the_role_taken_waits_its_own_way_and_is_not_kept():
    # A sender may not take the role later (it waits on an event), so it
    # never joins the pollers offered it: a process that casts often while
    # a listener reads would otherwise keep one entry per cast.
    with _role_held() as node:
        batch = _Batch(1)
        finisher = threading.Thread(target=batch.finished, args=(object(),))
        assert not node.read_for(batch, None, candidate=False)
        assert node._candidates == {}
        finisher.start()
        assert batch.wait(node, 30)  # on its event, the role being taken
        finisher.join()


def test_the_mailboxes_of_closed_listeners_are_not_kept_as_candidates_for_the_role():
    # A reader holding the role for long (an idle listener) sees other
    # listeners come, ask, and close; only a release without a delivery
    # takes candidates off, so the closed ones are forgotten as they pile up.
    with _role_held() as node:
        kept = Mailbox()
        assert not node.read_for(kept, None)
        for _ in range(1000):
            gone = Mailbox()
            assert not node.read_for(gone, None)
            gone.close()
        assert kept in node._candidates.values()
        assert len(node._candidates) <= 2 * _CANDIDATES + 1


def test_the_loop_reads_when_a_reader_that_left_with_a_delivery_does_not_come_back():
    # A reader that leaves with what it waited for is likely back at once,
    # and the parked loop leaves the role free for it a moment; a reader
    # that stays away (a long request) must not leave the process deaf.
    node = Node(_settings(), StaticMatchmaker([]))
    endpoint = node.listen_endpoint()
    slot = record_of("rpc", "openstack", "nobody-polls", None, False)
    idle = ZmqListener([slot], lambda _: None, lambda *_: 0, None, node.read_for)
    node.subscribe(idle, [])
    parked = threading.Event()

    def hook(point: str) -> None:
        if point == "zmq.parked":
            parked.set()

    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    try:
        with handoffs.installed(hook):
            mailbox = Mailbox()
            reader = threading.Thread(target=node.read_for, args=(mailbox, None))
            reader.start()
            node.call_soon(lambda: None)  # the loop wakes, finds the role taken, parks
            assert parked.wait(WAIT_MS / 1000), "the loop never parked"
            assert mailbox.put(Delivery(b"request", "inbox"))  # the reader leaves with it
            reader.join(WAIT_MS / 1000)
            assert not reader.is_alive()
        header = frames.Header(
            frames.new_msg_id(), "rpc", "openstack", "nobody-polls", "", False, ""
        )
        raw.connect(endpoint)
        raw.send_multipart([frames.encode_header(header), b"{}"])
        assert raw.poll(WAIT_MS), "nobody read the node's socket"
        assert frames.decode_ack(raw.recv()).status == frames.OK
        assert [d.body for d in [idle.mailbox.take()]] == [b"{}"]
    finally:
        raw.close(0)
        ctx.term()
        node.unsubscribe(idle, [])
        node.close()
