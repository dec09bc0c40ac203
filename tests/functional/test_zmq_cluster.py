"""ZeroMQ with the real Redis name service and several server processes.

Each server is a process of its own (:mod:`tests.functional.zmq_server`).
The tests count what was sent against what arrived, kill servers in the
middle of calls, restart them, stop and start Redis, and send garbage to a
server's socket. Redis keeps nothing on disk here: a test that stops it
starts it again, with .ci/run's command line.
"""

from __future__ import annotations

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
from rpcframe.drivers.zmq import frames as zmq_frames
from rpcframe.drivers.zmq import node as zmq_node
from tests.conftest import require_service
from tests.functional.peers import read_line
from tests.functional.zmq_common import PREFIX, URL, Cluster, endpoint_of, redis_cli, start_redis

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _redis() -> None:
    require_service("Redis", "127.0.0.1", 6379)


@pytest.fixture
def topic() -> str:
    return f"zmqfunc_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def transport() -> Iterator[rpcframe.Transport]:
    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, URL)
    yield transport
    transport.cleanup()


@pytest.fixture
def cluster(topic: str) -> Iterator[Cluster]:
    with contextlib.ExitStack() as stack:
        yield Cluster(topic, stack)


def client(transport: rpcframe.Transport, topic: str, **kwargs: Any) -> rpcframe.RPCClient:
    kwargs.setdefault("timeout", 20)
    return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic), **kwargs)


def test_calls_are_spread_round_robin_over_the_servers(transport, cluster, topic):
    for name in ("a", "b", "c"):
        cluster.start(name)
    answers = Counter(client(transport, topic).call({}, "whoami") for _ in range(60))
    assert set(answers) == {"a", "b", "c"}
    assert sum(answers.values()) == 60
    assert min(answers.values()) >= 10, answers


def test_direct_calls_and_fanout_casts_reach_whom_they_name(transport, cluster, topic):
    for name in ("a", "b", "c"):
        cluster.start(name)
    rpc = client(transport, topic)
    assert {rpc.prepare(server="b").call({}, "whoami") for _ in range(10)} == {"b"}
    for n in range(20):
        rpc.prepare(fanout=True).cast({}, "record", n=n)
    for n in range(30):
        rpc.cast({}, "record", n=n)
    arrived = {name: cluster.stop(name) for name in ("a", "b", "c")}
    # Each server ran every fanout cast; the 30 topic casts were shared.
    assert sum(arrived.values()) == 3 * 20 + 30, arrived
    assert all(count >= 20 for count in arrived.values()), arrived


def test_a_server_killed_during_a_call_fails_the_call_at_once(transport, cluster, topic, caplog):
    proc = cluster.start("a")
    rpc = client(transport, topic, timeout=60).prepare(server="a")
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            rpc.call({}, "block", seconds=60)
        except Exception as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call, name="zmq-test-caller")
    started = time.monotonic()
    caller.start()
    assert read_line(proc, 20) == "blocking"
    cluster.kill("a")
    caller.join(15)
    assert not caller.is_alive(), "the call waited on for a dead server"
    assert time.monotonic() - started < 15
    assert len(outcome) == 1
    assert isinstance(outcome[0], (ConnectionError, rpcframe.MessageDeliveryFailure)), outcome
    assert "went away" in str(outcome[0]) or "lost" in str(outcome[0])
    # A peer lost with a call on it is worth a warning (one that leaves idle is not).
    assert any(
        r.levelno == logging.WARNING and "was lost" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]


def test_a_restarted_server_comes_back_into_rotation(transport, cluster, topic):
    cluster.start("a")
    cluster.start("b")
    rpc = client(transport, topic)
    assert {rpc.call({}, "whoami") for _ in range(10)} == {"a", "b"}
    cluster.kill("b")
    # Its record lingers until it expires; calls still get through to a.
    assert {rpc.call({}, "whoami") for _ in range(10)} == {"a"}
    cluster.start("b")
    seen: set[str] = set()
    deadline = time.monotonic() + 10
    while seen != {"a", "b"} and time.monotonic() < deadline:
        seen.add(rpc.call({}, "whoami"))
    assert seen == {"a", "b"}


@pytest.mark.slow
def test_routing_goes_on_from_the_cache_while_redis_is_down(transport, cluster, topic):
    proc = cluster.start("a")
    rpc = client(transport, topic)
    assert rpc.call({}, "whoami") == "a"
    assert redis_cli("shutdown", "nosave").returncode in (0, 1)
    try:
        assert redis_cli("ping").stdout.strip() != "PONG"
        answers = [rpc.call({}, "whoami") for _ in range(20)]
        assert answers == ["a"] * 20
    finally:
        start_redis()
    assert read_line(proc, 20) == "reregistered"
    key = f"{PREFIX}:" + json.dumps(["rpc", "openstack", topic], separators=(",", ":"))
    assert redis_cli("zcard", key).stdout.strip() == "1"
    assert rpc.call({}, "whoami") == "a"


def test_a_cast_to_a_topic_without_servers_fails_at_once(transport, topic):
    started = time.monotonic()
    with pytest.raises(rpcframe.MessageUndeliverable, match="no process listens"):
        client(transport, topic).cast({}, "record", n=1)
    assert time.monotonic() - started < 1


def test_a_call_with_at_least_once_to_a_topic_without_servers_fails_at_once(transport, topic):
    options = rpcframe.TransportOptions(at_least_once=True)
    rpc = client(transport, topic, transport_options=options)
    started = time.monotonic()
    with pytest.raises(rpcframe.MessageUndeliverable):
        rpc.call({}, "whoami")
    assert time.monotonic() - started < 1


def test_malformed_frames_are_dropped_and_the_server_keeps_serving(transport, cluster, topic):
    proc = cluster.start("a")
    endpoint = endpoint_of(topic, "a")
    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    try:
        raw.connect(endpoint)
        garbage = [
            [b"just one frame"],
            [b"RPZ1D\0" + b"0" * 32 + b"\0rpc\0only\0three", b"body"],
            [b"\xff\xfe\x00 binary", b"body", b"one too many"],
            [b"RPZ1D\0" + b"1" * 32 + b"\0nokind\0openstack\0" + topic.encode() + b"\0\0\0", b"x"],
        ]
        for frames_ in garbage:
            raw.send_multipart(frames_)
        refused = []
        poller = zmq.Poller()
        poller.register(raw, zmq.POLLIN)
        while len(refused) < 2 and poller.poll(5000):
            refused.append(raw.recv())
        assert all(b"\0bad\0" in ack for ack in refused) and len(refused) == 2, refused
    finally:
        raw.close(0)
        ctx.term()
    assert client(transport, topic).call({}, "whoami") == "a"
    cluster.stop("a")
    assert proc.stderr is not None
    logged = proc.stderr.read()
    assert logged.count("dropping a malformed message") == len(garbage), logged
    assert "Traceback" not in logged


def test_a_quiet_delivery_is_acknowledged_only_when_refused(transport, cluster, topic):
    # A call request costs one message when a server takes it: the reply
    # is its proof. Refused, it is acknowledged, so that the caller hears at once.
    cluster.start("a")
    endpoint = endpoint_of(topic, "a")
    cast = json.dumps(
        {"oslo.version": "2.0", "oslo.message": json.dumps({"method": "whoami", "args": {}})}
    ).encode()
    taken, refused, confirmed = (zmq_frames.new_msg_id() for _ in range(3))

    def header(msg_id: str, to: str, quiet: bool) -> bytes:
        return zmq_frames.encode_header(
            zmq_frames.Header(msg_id, "rpc", "openstack", to, "a", False, "", quiet)
        )

    ctx = zmq.Context()
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    try:
        raw.connect(endpoint)
        raw.send_multipart([header(taken, topic, True), cast])
        raw.send_multipart([header(refused, topic + "_nobody", True), cast])
        raw.send_multipart([header(confirmed, topic, False), cast])
        acks = []
        poller = zmq.Poller()
        poller.register(raw, zmq.POLLIN)
        while len(acks) < 2 and poller.poll(5000):
            acks.append(zmq_frames.decode_ack(raw.recv()))
    finally:
        raw.close(0)
        ctx.term()
    assert [(ack.msg_id, ack.status) for ack in acks] == [
        (refused, zmq_frames.NOROUTE),
        (confirmed, zmq_frames.OK),
    ]


def test_a_reply_names_the_request_it_answers(cluster, topic):
    # The caller's process keeps a call's request until its reply: the
    # reply's header says which request it answers, so that it can forget it.
    cluster.start("a")
    ctx = zmq.Context()
    inbox = ctx.socket(zmq.ROUTER)
    inbox.linger = 0
    caller = ctx.socket(zmq.DEALER)
    caller.linger = 0
    try:
        port = inbox.bind_to_random_port("tcp://127.0.0.1")
        reply_q = f"reply_{uuid.uuid4().hex}@tcp://127.0.0.1:{port}"
        message = {"method": "whoami", "args": {}, "_msg_id": uuid.uuid4().hex, "_reply_q": reply_q}
        request = json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)})
        call_id = zmq_frames.new_msg_id()
        header = zmq_frames.Header(call_id, "rpc", "openstack", topic, "a", False, "", True)
        caller.connect(endpoint_of(topic, "a"))
        caller.send_multipart([zmq_frames.encode_header(header), request.encode()])
        assert inbox.poll(10_000), "no reply came"
        _, reply_header, body = inbox.recv_multipart()
    finally:
        inbox.close(0)
        caller.close(0)
        ctx.term()
    reply = zmq_frames.decode_header(reply_header)
    assert (reply.kind, reply.topic, reply.answers) == ("reply", reply_q, call_id)
    assert json.loads(json.loads(body)["oslo.message"])["result"] == "a"


def test_a_server_leaving_after_its_replies_leaves_its_callers_nothing(cluster, topic, caplog):
    # Calls answered before their server went are over: nothing is failed
    # on their behalf, and the loss of an idle server is no warning.
    caplog.set_level(logging.INFO, logger="rpcframe.drivers.zmq")
    lost = threading.Event()

    class Lost(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "was lost" in record.getMessage():
                lost.set()

    watcher = Lost()
    logging.getLogger("rpcframe.drivers.zmq").addHandler(watcher)
    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, URL)
    try:
        cluster.start("a")
        rpc = client(transport, topic)
        assert [rpc.call({}, "whoami") for _ in range(20)] == ["a"] * 20
        cluster.kill("a")
        assert lost.wait(15), "the loss of the server was not noticed"
    finally:
        transport.cleanup()
        logging.getLogger("rpcframe.drivers.zmq").removeHandler(watcher)
    losses = [r for r in caplog.records if "was lost" in r.getMessage()]
    assert [r.levelname for r in losses] == ["INFO"], [r.getMessage() for r in losses]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    ]


class _Echo:
    def echo(self, ctxt: Any, n: int) -> int:
        return n


def test_a_server_remembers_a_bounded_number_of_message_ids(monkeypatch, topic):
    monkeypatch.setattr(zmq_node, "_SEEN", 64)
    conf = cfg.ConfigOpts()
    conf([])
    # Options of its own: a node of its own, made with the small bound.
    transport = rpcframe.get_rpc_transport(conf, URL + "&rpc_retry_attempts=2")
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server="memory"), [_Echo()], executor="threading"
    )
    server.start()
    try:
        rpc = client(transport, topic)
        results = [rpc.call({}, "echo", n=n) for n in range(300)]
        rpc.cast({}, "echo", n=-1)
        seen = transport._driver._node.seen
        assert results == list(range(300))
        assert 0 < len(seen) <= 64
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


def test_a_reply_is_written_without_waiting_and_one_to_a_closed_inbox_is_logged(transport, caplog):
    # An inbox lives in its caller's process: closed, it does not come back,
    # so a reply is not waited for; the caller's process refuses it, and the
    # sender's log says it was dropped.
    driver = transport._driver
    inbox = driver.open_inbox()
    address = inbox.address
    inbox.close()
    dropped = threading.Event()
    said: list[str] = []

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "a reply (or a call's heartbeat) was dropped" in record.getMessage():
                said.append(record.getMessage())
                dropped.set()

    watch = Watch()
    logger = logging.getLogger("rpcframe.drivers.zmq")
    logger.addHandler(watch)
    try:
        with caplog.at_level(logging.INFO, logger="rpcframe.drivers.zmq"):
            driver.send(address, b'{"oslo.version": "2.0"}', timeout=5.0, confirm=False)
            assert dropped.wait(10)
    finally:
        logger.removeHandler(watch)
    assert len(said) == 1 and "nothing listens on it" in said[0], said
