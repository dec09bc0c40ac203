"""Notifications kept in Redis streams on ZeroMQ (``zmq_notification_store=redis``).

With the real Redis on this machine: notifications sent while no listener
process runs reach the one that starts later, every one of them; what a
listener took and never settled is taken over by another listener of its
pool once it waited ``zmq_notification_claim_after``; an entry that is not
a notification is logged and settled, and the listener goes on. Each test
counts what was sent against what arrived, and removes its keys from Redis.
"""

from __future__ import annotations

import logging
import textwrap
import uuid
from collections.abc import Iterator

import pytest
from oslo_config import cfg

import rpcframe
from rpcframe.drivers import base
from rpcframe.testing.contract_notify import WAIT
from tests.conftest import delete_redis_keys, require_service, run_python

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

PREFIX = f"rpcframe.functional.store.{uuid.uuid4().hex[:8]}"
URL = (
    "zmq+redis://127.0.0.1:6379/?rpc_zmq_host=127.0.0.1&rpc_zmq_bind_address=127.0.0.1"
    f"&key_prefix={PREFIX}&zmq_notification_store=redis&zmq_notification_claim_after=1"
)


@pytest.fixture(autouse=True)
def _redis() -> Iterator[None]:
    require_service("Redis", "127.0.0.1", 6379)
    yield
    delete_redis_keys(PREFIX)


@pytest.fixture
def topic() -> str:
    return f"stored_{uuid.uuid4().hex[:10]}"


def _conf() -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([])
    return conf


def test_notifications_sent_before_a_listener_process_runs_all_reach_it(topic):
    transport = rpcframe.get_notification_transport(_conf(), URL)
    try:
        notifier = rpcframe.Notifier(transport, "api.host", driver="messagingv2", topics=[topic])
        for n in range(25):
            notifier.info({}, "compute.start", {"n": n})
    finally:
        transport.cleanup()
    # A listener process of its own, started after every send: it prints what it got.
    listener = textwrap.dedent(
        f"""
        import threading
        from oslo_config import cfg
        import rpcframe

        got, done = [], threading.Event()

        class Endpoint:
            def info(self, ctxt, publisher_id, event_type, payload, metadata):
                got.append(payload["n"])
                if len(got) == 25:
                    done.set()

        conf = cfg.ConfigOpts()
        conf([])
        transport = rpcframe.get_notification_transport(conf, {URL!r})
        server = rpcframe.get_notification_listener(
            transport, [rpcframe.Target(topic={topic!r})], [Endpoint()]
        )
        server.start()
        done.wait({WAIT})
        server.stop()
        server.wait()
        transport.cleanup()
        print(sorted(got))
        """
    )
    ran = run_python(listener, timeout=WAIT * 3)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(list(range(25))), ran.stdout + ran.stderr


def test_what_a_listener_took_and_never_settled_goes_to_another_of_its_pool(topic):
    conf = _conf()
    driver = rpcframe.transport.load_driver(conf, URL)
    address = base.Address("openstack", f"{topic}.info", kind=base.NOTIFY)
    first = driver.listen([address], pool="workers")
    try:
        for n in range(10):
            driver.send(address, str(n).encode())
        settled = []
        for _ in range(4):
            incoming = first.poll(WAIT)
            assert incoming is not None
            incoming.ack()
            settled.append(incoming.body)
        taken = first.poll(WAIT)  # taken, then its listener goes away without a word
        assert taken is not None
    finally:
        first.close()
    second = driver.listen([address], pool="workers")
    try:
        rest = []
        while len(rest) < 6:
            incoming = second.poll(WAIT)
            assert incoming is not None, f"only {rest} came back"
            incoming.ack()
            rest.append(incoming.body)
        assert second.poll(1.5) is None  # nothing twice: the four settled ones stay settled
    finally:
        second.close()
        driver.close()
    assert sorted(settled + rest, key=int) == [str(n).encode() for n in range(10)]
    assert taken.body in rest


def test_an_entry_that_is_no_notification_is_logged_settled_and_skipped(topic, caplog):
    import redis

    conf = _conf()
    driver = rpcframe.transport.load_driver(conf, URL)
    address = base.Address("openstack", f"{topic}.info", kind=base.NOTIFY)
    listener = driver.listen([address])
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        key = driver._store.key(address)
        with caplog.at_level(logging.WARNING, logger="rpcframe.drivers.zmq.store"):
            client.xadd(key, {"not-the-body": "x"})
            driver.send(address, b"after it")
            incoming = listener.poll(WAIT)
            assert incoming is not None and incoming.body == b"after it"
            incoming.ack()
        assert any("no body field" in r.getMessage() for r in caplog.records), caplog.records
        listener.close()  # its reader tells Redis what was settled before it ends
        assert client.xpending(key, "default")["pending"] == 0
    finally:
        listener.close()
        client.close()
        driver.close()
