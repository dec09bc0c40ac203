"""rpcframe beside oslo.messaging under the options Kolla-Ansible writes.

Both sides read one configuration file (:mod:`tests.functional.kolla`):
quorum queues, transient quorum queues, stream fanout, the queue manager.
oslo.messaging runs in its own processes (``oslo_peer.py``). The tests
check that both declare the same entities, that calls, casts, fanouts and
notifications cross in both directions, that a stream reader resumes after
a reconnect without losing or repeating messages, and the migration itself:
servers of both implementations on one topic, either started first, serving
clients of both.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import rpcframe
from rpcframe.drivers.amqp.queue_manager import QueueManager
from tests import brokers
from tests.conftest import logged
from tests.functional import kolla, peers
from tests.functional.interop_common import InteropEndpoint
from tests.functional.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

ALLOWED = ["tests.functional.interop_common"]
WAIT = 20.0
CTXT = {"user_id": "rf-user"}


class Endpoint(InteropEndpoint):
    """The interop endpoint, telling waiters about every record."""

    target = rpcframe.Target(version="1.3")

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.changed = threading.Condition(self.lock)

    def record(self, ctxt: Any, value: Any) -> None:
        with self.changed:
            self.records.append(value)
            self.changed.notify_all()

    def wait_until(self, done: Callable[[list[Any]], bool], timeout: float = WAIT) -> list[Any]:
        """The records once ``done(records)`` holds, or as they are at the timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not done(self.records):
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.changed.wait(left)
            return list(self.records)


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kolla.Deployment]:
    brokers.require_rabbitmq()
    with kolla.deployment(tmp_path_factory.mktemp("kolla")) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def transport(deploy: kolla.Deployment) -> Iterator[rpcframe.Transport]:
    transport = rpcframe.get_rpc_transport(deploy.conf(), allowed_remote_exmods=ALLOWED)
    yield transport
    transport.cleanup()


def _server(transport: rpcframe.Transport, topic: str, endpoint: Endpoint) -> Any:
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server=endpoint.name), [endpoint]
    )
    server.start()
    return server


@contextlib.contextmanager
def _serving(transport: rpcframe.Transport, topic: str, endpoint: Endpoint) -> Iterator[Any]:
    server = _server(transport, topic, endpoint)
    try:
        yield server
    finally:
        server.stop()
        server.wait()


def _oslo_server(deploy: kolla.Deployment, topic: str, name: str) -> Any:
    return peers.oslo_server("", deploy.exchange, topic, name, config_file=deploy.path)


def _client(transport: rpcframe.Transport, topic: str, **target: Any) -> Any:
    return rpcframe.get_rpc_client(transport, rpcframe.Target(topic=topic, **target), timeout=WAIT)


def _oslo_records(client: Any, wanted: set[str]) -> list[Any]:
    """An oslo.messaging server's records once they hold ``wanted`` (or at the timeout)."""
    deadline = time.monotonic() + WAIT
    recorded = client.call(CTXT, "recorded")
    while not wanted <= set(recorded) and time.monotonic() < deadline:
        # Ask again: each call is a round trip, so this waits on the peer, not a timer.
        recorded = client.call(CTXT, "recorded")
    return recorded


# -- the same entities on the broker ----------------------------------------------------


def _shapes(found: dict[str, dict[str, Any]], topic: str) -> dict[str, dict[str, Any]]:
    return {name.replace(topic, "<topic>", 1): props for name, props in found.items()}


def test_rpcframe_declares_what_oslo_declares_with_the_same_options(deploy, transport):
    oslo_topic, our_topic = kolla.topic(deploy, "decl_oslo"), kolla.topic(deploy, "decl_rf")
    with _oslo_server(deploy, oslo_topic, "s1"), _serving(transport, our_topic, Endpoint("s1")):
        # A call each way gives each side its reply queue.
        assert _client(transport, oslo_topic, server="s1").call(CTXT, "whoami") == "s1"
        peers.run_oslo("fleet", "", deploy.exchange, our_topic, "s1", "x", config_file=deploy.path)
        queues = brokers.queue_properties([oslo_topic, our_topic, deploy.reply_prefix])
        exchanges = brokers.exchange_properties([oslo_topic, our_topic, deploy.exchange])
    theirs = _shapes({n: p for n, p in queues.items() if n.startswith(oslo_topic)}, oslo_topic)
    ours = _shapes({n: p for n, p in queues.items() if n.startswith(our_topic)}, our_topic)
    assert set(ours) == {"<topic>", "<topic>.s1", "<topic>_fanout"}
    assert ours == theirs
    assert ours["<topic>_fanout"]["type"] == "stream"
    assert ours["<topic>_fanout"]["arguments"] == {"x-queue-type": "stream", "x-max-age": "1800s"}
    assert ours["<topic>"]["type"] == "quorum" and ours["<topic>"]["durable"]
    assert exchanges[f"{our_topic}_fanout"] == exchanges[f"{oslo_topic}_fanout"]
    assert exchanges[f"{our_topic}_fanout"]["durable"]
    replies = [props for name, props in queues.items() if name.startswith(deploy.reply_prefix)]
    assert len(replies) >= 2  # one of each library
    assert all(props == replies[0] for props in replies)
    assert replies[0]["type"] == "quorum" and replies[0]["arguments"]["x-expires"] == 1_800_000


TRANSIENT_QUORUM_ONLY = """\
use_queue_manager = true
rabbit_transient_quorum_queue = true
"""


def test_transient_quorum_fanout_queues_match_oslos_without_streams(tmp_path):
    brokers.require_rabbitmq()
    with kolla.deployment(tmp_path, TRANSIENT_QUORUM_ONLY) as deploy:
        transport = rpcframe.get_rpc_transport(deploy.conf())
        try:
            oslo_topic, our_topic = kolla.topic(deploy, "tq_oslo"), kolla.topic(deploy, "tq_rf")
            with _oslo_server(deploy, oslo_topic, "s1"):
                with _serving(transport, our_topic, Endpoint("s1")):
                    queues = brokers.queue_properties([oslo_topic, our_topic])
                    exchanges = brokers.exchange_properties([oslo_topic, our_topic])
        finally:
            transport.cleanup()
    fanouts = {name: props for name, props in queues.items() if "_fanout_" in name}
    ours = [props for name, props in fanouts.items() if name.startswith(f"{our_topic}_")]
    theirs = [props for name, props in fanouts.items() if name.startswith(f"{oslo_topic}_")]
    assert len(ours) == len(theirs) == 1 and ours == theirs
    assert ours[0]["type"] == "quorum" and ours[0]["durable"]
    assert ours[0]["arguments"] == {"x-queue-type": "quorum", "x-expires": 1_800_000}
    names = [name for name in fanouts if name.startswith((our_topic, oslo_topic))]
    assert all(f"_fanout_{deploy.hostname}:{deploy.processname}:" in name for name in names)
    assert exchanges[f"{our_topic}_fanout"] == exchanges[f"{oslo_topic}_fanout"]
    assert exchanges[f"{our_topic}_fanout"]["durable"]


OLDER_OPTIONS = """\
rabbit_ha_queues = true
enable_cancel_on_failover = true
kombu_compression = gzip
amqp_durable_queues = true
"""


def test_compression_mirroring_and_cancel_on_failover_work_as_oslos(tmp_path):
    # Options of older deployments: x-ha-policy on every queue,
    # x-cancel-on-ha-failover on every consumer, gzip bodies both ways.
    brokers.require_rabbitmq()
    with kolla.deployment(tmp_path, OLDER_OPTIONS) as deploy:
        transport = rpcframe.get_rpc_transport(deploy.conf(), allowed_remote_exmods=ALLOWED)
        oslo_topic, our_topic = kolla.topic(deploy, "old_oslo"), kolla.topic(deploy, "old_rf")
        try:
            with _oslo_server(deploy, oslo_topic, "s1"), contextlib.ExitStack() as ours:
                for name in ("rf-1", "rf-2"):
                    ours.enter_context(_serving(transport, our_topic, Endpoint(name)))
                outcomes = peers.run_oslo(
                    "client", "", deploy.exchange, our_topic, config_file=deploy.path
                )
                client = _client(transport, oslo_topic, server="s1")
                assert client.call(CTXT, "add", a=1, b=2) == 3
                wire = _peek_fanout(client, oslo_topic)
                queues = brokers.queue_properties([oslo_topic, our_topic])
        finally:
            transport.cleanup()
    assert outcomes["add"] == {"result": 42} and outcomes["direct"] == {"result": "rf-2"}
    assert wire["compression"] == "application/x-gzip"
    assert json.loads(wire["body"])["oslo.version"] == "2.0"
    theirs = {n.replace(oslo_topic, "<topic>"): p for n, p in queues.items() if oslo_topic in n}
    ours_ = {n.replace(our_topic, "<topic>"): p for n, p in queues.items() if our_topic in n}
    assert ours_["<topic>"] == theirs["<topic>"]
    assert ours_["<topic>"]["arguments"] == {"x-ha-policy": "all"} and ours_["<topic>"]["durable"]


def _peek_fanout(client: Any, topic: str) -> dict[str, Any]:
    """One fanout cast as a raw AMQP client sees it in a queue of its own."""
    import zlib

    peek = f"{topic}_peek"
    with brokers.admin_channels() as channel_of:
        channel = channel_of()
        channel.queue_declare(peek, auto_delete=False)
        channel.queue_bind(peek, f"{topic}_fanout", topic)
        try:
            client.prepare(server=None, fanout=True).cast(CTXT, "record", value="peek")
            message = None
            deadline = time.monotonic() + WAIT
            while message is None and time.monotonic() < deadline:
                # basic.get does not wait: the confirmed cast is already queued.
                message = channel.basic_get(peek, no_ack=True)
        finally:
            channel.queue_delete(peek)
    assert message is not None
    compression = (message.headers or {}).get("compression")
    return {"compression": compression, "body": zlib.decompress(message.body).decode()}


def test_a_running_server_names_the_option_when_its_queue_was_redeclared_and_recovers(
    deploy, transport
):
    topic = kolla.topic(deploy, "redeclared")
    queue = f"{topic}.rf-x"
    with _serving(transport, topic, Endpoint("rf-x")):
        with logged("rpcframe.server", "rabbit_quorum_queue") as told:
            # Another service replaces the server's quorum queue with a classic one.
            with brokers.admin_channels() as channel_of:
                channel = channel_of()
                channel.queue_delete(queue)
                channel.queue_declare(queue, durable=False, auto_delete=False)
            assert told.wait(WAIT), "the refused declaration was not logged with the option"
        with logged("rpcframe.server", "listening again") as back:
            brokers.delete_queues(names=[queue])
            assert back.wait(60), "the server did not subscribe again"
        assert _client(transport, topic, server="rf-x").call(CTXT, "whoami") == "rf-x"
    assert brokers.queue_properties([queue])[queue]["type"] == "quorum"


# -- calls, casts and fanouts both ways ----------------------------------------------------


def test_rpcframe_calls_casts_and_fanouts_reach_an_oslo_server(deploy, transport):
    topic = kolla.topic(deploy, "to_oslo")
    ours = Endpoint("rf-1")
    with _oslo_server(deploy, topic, "oslo-1"), _serving(transport, topic, ours):
        client = _client(transport, topic, server="oslo-1")
        assert client.call(CTXT, "add", a=40, b=2) == 42
        with pytest.raises(ValueError, match="bad value"):
            client.call(CTXT, "fail_builtin", message="bad value")
        client.cast(CTXT, "record", value="cast-from-rf")
        client.prepare(server=None, fanout=True).cast(CTXT, "record", value="fanout-from-rf")
        assert {"cast-from-rf", "fanout-from-rf"} <= set(
            _oslo_records(client, {"cast-from-rf", "fanout-from-rf"})
        )
        assert "fanout-from-rf" in ours.wait_until(lambda r: "fanout-from-rf" in r)


def test_oslo_calls_casts_and_fanouts_reach_rpcframe_servers(deploy, transport):
    topic = kolla.topic(deploy, "from_oslo")
    one, two = Endpoint("rf-1"), Endpoint("rf-2")
    with _serving(transport, topic, one), _serving(transport, topic, two):
        outcomes = peers.run_oslo("client", "", deploy.exchange, topic, config_file=deploy.path)

        def everything() -> list[Any]:
            return one.records + two.records

        for endpoint in (one, two):
            endpoint.wait_until(lambda r: "fanout-from-oslo" in r)
        two.wait_until(lambda r: "cast-from-oslo" in everything())
    assert outcomes["add"] == {"result": 42}
    assert outcomes["fail_custom"]["error"] == "InteropError_Remote"
    assert outcomes["direct"] == {"result": "rf-2"}
    assert outcomes["cast"] == outcomes["fanout"] == {"result": None}
    assert "fanout-from-oslo" in one.records and "fanout-from-oslo" in two.records
    assert everything().count("cast-from-oslo") == 1


# -- notifications both ways ------------------------------------------------------------------


def test_rpcframe_notifications_reach_an_oslo_listener(deploy):
    conf = deploy.conf()
    transport = rpcframe.get_notification_transport(conf)
    try:
        # driver and topics come from [oslo_messaging_notifications] of the file.
        notifier = rpcframe.Notifier(transport, publisher_id="rf.kolla")
        notifier.info(CTXT, "kolla.info", {"n": 1})
        notifier.error(CTXT, "kolla.error", {"n": 2})
    finally:
        transport.cleanup()
    got = peers.run_oslo(
        "listen", "", deploy.exchange, deploy.notifications, "2", config_file=deploy.path
    )
    assert sorted((n["priority"], n["event_type"], n["payload"]["n"]) for n in got) == [
        ("error", "kolla.error", 2),
        ("info", "kolla.info", 1),
    ]
    assert all(n["publisher_id"] == "rf.kolla" for n in got)


class _Notifications:
    def __init__(self) -> None:
        self.got: list[tuple[str, str, Any]] = []
        self.done = threading.Event()

    def _keep(self, priority: str, event_type: str, payload: Any) -> None:
        self.got.append((priority, event_type, payload))
        if len(self.got) >= 2:
            self.done.set()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("info", event_type, payload)

    def error(self, ctxt, publisher_id, event_type, payload, metadata):
        self._keep("error", event_type, payload)


def test_oslo_notifications_reach_an_rpcframe_listener(deploy):
    topic = kolla.topic(deploy, "notes")
    assert peers.run_oslo("notify", "", deploy.exchange, topic, config_file=deploy.path) == "sent"
    transport = rpcframe.get_notification_transport(deploy.conf())
    endpoint = _Notifications()
    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic=topic)], [endpoint], executor="threading"
    )
    listener.start()
    try:
        assert endpoint.done.wait(WAIT)
    finally:
        listener.stop()
        listener.wait()
        transport.cleanup()
    assert sorted(endpoint.got) == [
        ("error", "peer.error", {"n": 2}),
        ("info", "peer.info", {"n": 1}),
    ]
    queues = brokers.queue_properties([f"{topic}."])
    assert {props["type"] for props in queues.values()} == {"quorum"}


# -- stream fanout across a reconnect ------------------------------------------------------


def test_a_stream_reader_resumes_after_a_reconnect_without_loss_or_repeats(deploy):
    topic = kolla.topic(deploy, "resume")
    with contextlib.ExitStack() as stack:
        proxy = stack.enter_context(TcpProxy((brokers.RABBIT_HOST, brokers.RABBIT_PORT)))
        stack.enter_context(_oslo_server(deploy, topic, "oslo-r"))
        caster = stack.enter_context(
            peers.oslo_process("caster", "", deploy.exchange, config_file=deploy.path)
        )
        assert peers.read_line(caster, 60) == "ready"

        def cast(*values: str) -> None:
            for value in values:
                assert peers.tell(caster, f"{topic} {value}") == "sent"

        cast("before-1", "before-2")  # in the stream before our server reads it
        transport = rpcframe.get_rpc_transport(deploy.conf(), proxy.url())
        stack.callback(transport.cleanup)
        ours = Endpoint("rf-r")
        stack.enter_context(_serving(transport, topic, ours))
        cast("a-1", "a-2")
        ours.wait_until(lambda r: {"a-1", "a-2"} <= set(r))
        proxy.cut()
        cast("b-1", "b-2", "b-3")  # while our server is cut off
        proxy.resume()
        cast("c-1")
        expected = ["a-1", "a-2", "b-1", "b-2", "b-3", "c-1"]
        got = ours.wait_until(lambda r: set(expected) <= set(r))
        oslo = _client(rpcframe.get_rpc_transport(deploy.conf()), topic, server="oslo-r")
        stack.callback(oslo.transport.cleanup)
        oslo_got = _oslo_records(oslo, {"before-1", "before-2", *expected})
    assert sorted(got) == expected  # each once, nothing from before it subscribed
    assert {"before-1", "before-2", *expected} <= set(oslo_got)


# -- a fleet mid-migration ---------------------------------------------------------------------


@pytest.mark.parametrize("first", ["oslo", "rpcframe"])
def test_a_mixed_fleet_serves_clients_of_both_kinds(deploy, transport, first):
    topic = kolla.topic(deploy, f"fleet_{first}")
    ours, oslo_name = Endpoint(f"rf-{first}"), f"oslo-{first}"
    names = {ours.name, oslo_name}
    with contextlib.ExitStack() as stack:
        starts = [
            lambda: stack.enter_context(_oslo_server(deploy, topic, oslo_name)),
            lambda: stack.enter_context(_serving(transport, topic, ours)),
        ]
        for start in starts if first == "oslo" else reversed(starts):
            start()
        client = _client(transport, topic)
        assert {client.call(CTXT, "whoami") for _ in range(8)} == names
        for name in names:
            assert client.prepare(server=name).call(CTXT, "whoami") == name
        client.prepare(fanout=True).cast(CTXT, "record", value="fanout-from-rf")
        outcomes = peers.run_oslo(
            "fleet",
            "",
            deploy.exchange,
            topic,
            ",".join(sorted(names)),
            "fanout-from-oslo",
            config_file=deploy.path,
        )
        fanouts = {"fanout-from-rf", "fanout-from-oslo"}
        assert fanouts <= set(ours.wait_until(lambda r: fanouts <= set(r)))
        assert fanouts <= set(_oslo_records(client.prepare(server=oslo_name), fanouts))
    assert set(outcomes["round_robin"]) == names
    assert outcomes["direct"] == {name: name for name in names}


# -- conflicting declarations ---------------------------------------------------------------------


def test_a_server_with_other_queue_options_fails_to_start_naming_the_option(deploy):
    topic = kolla.topic(deploy, "conflict")
    transport = rpcframe.get_rpc_transport(
        brokers.conf_for_exchange(deploy.exchange), brokers.RABBIT_URL
    )
    try:
        with _oslo_server(deploy, topic, "oslo-c"):
            with pytest.raises(rpcframe.ServerListenError, match="rabbit_quorum_queue"):
                _server(transport, topic, Endpoint("rf-c"))
    finally:
        transport.cleanup()


def test_a_fanout_exchange_declared_durable_by_others_is_used_as_it_is(tmp_path):
    # oslo.messaging servers with transient quorum queues declared the fanout
    # exchange durable; an rpcframe server with default options joins the topic.
    brokers.require_rabbitmq()
    with kolla.deployment(tmp_path, TRANSIENT_QUORUM_ONLY) as deploy:
        topic = kolla.topic(deploy, "durable_fanout")
        defaults = rpcframe.get_rpc_transport(
            brokers.conf_for_exchange(deploy.exchange), brokers.RABBIT_URL
        )
        ours = Endpoint("rf-d")
        try:
            with _oslo_server(deploy, topic, "oslo-d"), _serving(defaults, topic, ours):
                client = _client(defaults, topic)
                client.prepare(fanout=True).cast(CTXT, "record", value="from-rf")
                peers.run_oslo(
                    "fleet",
                    "",
                    deploy.exchange,
                    topic,
                    "rf-d",
                    "from-oslo",
                    config_file=deploy.path,
                )
                got = ours.wait_until(lambda r: {"from-rf", "from-oslo"} <= set(r))
                oslo_got = _oslo_records(client.prepare(server="oslo-d"), {"from-rf"})
        finally:
            defaults.cleanup()
    assert {"from-rf", "from-oslo"} <= set(got)
    assert "from-rf" in oslo_got


def test_queues_others_declared_transient_are_used_transient_as_oslo_does(deploy):
    # Services with default options declared the topic's queues and exchange
    # transient; a server with amqp_durable_queues joins them.
    topic = kolla.topic(deploy, "transient")
    exchange = f"{deploy.exchange}_transient"
    with brokers.admin_channels() as channel_of:
        channel = channel_of()
        channel.exchange_declare(exchange, "topic", durable=False, auto_delete=False)
        channel.queue_declare(topic, durable=False, auto_delete=False)
        channel.queue_bind(topic, exchange, topic)
    conf = brokers.conf_for_exchange(exchange)
    transport = rpcframe.get_rpc_transport(conf, f"{brokers.RABBIT_URL}?amqp_durable_queues=true")
    try:
        with _serving(transport, topic, Endpoint("rf-t")):
            assert _client(transport, topic).call(CTXT, "whoami") == "rf-t"
    finally:
        transport.cleanup()
        brokers.delete_exchanges([exchange])
    assert brokers.queue_properties([topic])[topic]["durable"] is False


# -- the queue manager's counter, shared with oslo.messaging processes ------------------------


def _draws(proc: Any, count: int) -> list[str]:
    names: list[str] = json.loads(peers.tell(proc, str(count)))
    return names


@pytest.mark.parametrize("new_session", [False, True], ids=["same-service", "other-service"])
def test_oslo_and_rpcframe_processes_never_draw_the_same_queue_name(tmp_path, new_session):
    hostname = f"qm-{uuid.uuid4().hex[:10]}"
    manager = QueueManager(hostname, "kolla-service", str(tmp_path))
    try:
        with peers.oslo_process(
            "draw", hostname, "kolla-service", str(tmp_path), new_session=new_session
        ) as oslo:
            assert peers.read_line(oslo, 60) == "ready"
            names = _draws(oslo, 2)
            names += [manager.next_name(), manager.next_name()]
            names += _draws(oslo, 2)
            names.append(manager.next_name())
    finally:
        with contextlib.suppress(OSError):
            os.remove(manager.counter_file)
    assert len(set(names)) == len(names) == 7
    assert all(name.startswith(f"{hostname}:kolla-service:") for name in names)
