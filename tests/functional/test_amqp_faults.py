"""Broker faults while traffic flows: what was sent against what arrived.

A client casts messages with unique ids and makes calls in a loop while the
test closes every connection on the broker several times
(``rabbitmqctl close_all_connections``) and once stops and starts the
broker application. Afterwards every cast that returned must have reached
the server, every call must have ended (result or clean error) within its
timeout, and the server must still serve. The broker is left running, even
when the test fails.

Queues and exchanges are durable here (``amqp_durable_queues``): a cast is
confirmed once the broker owns it, and only a durable queue keeps it across
a restart of the broker application.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import rpcframe
from tests import brokers

pytestmark = [pytest.mark.broker, pytest.mark.slow, pytest.mark.timeout(420)]

CALL_TIMEOUT = 5.0
CAST_TIMEOUT = 60.0
#: Slack for a call's own bookkeeping beyond its timeout.
CALL_SLACK = 1.0


class Counter:
    """The server's endpoint: remembers every cast id it ran."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.cond = threading.Condition()

    def bump(self, ctxt: Any, n: int) -> None:
        with self.cond:
            self.seen.add(n)
            self.cond.notify_all()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def wait_for(self, wanted: set[int], timeout: float) -> set[int]:
        """The ids of ``wanted`` still missing after at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not wanted <= self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return wanted - self.seen


class Caster(threading.Thread):
    """Casts ids 0, 1, 2... until stopped; remembers which casts returned."""

    def __init__(self, client: Any) -> None:
        super().__init__(name="fault-caster", daemon=True)
        self.client = client
        self.accepted: list[int] = []
        self.refused: list[tuple[int, str]] = []
        self.progress = threading.Condition()
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            try:
                self.client.cast({}, "bump", n=n)
            except rpcframe.MessagingException as exc:
                self.refused.append((n, type(exc).__name__))
            else:
                with self.progress:
                    self.accepted.append(n)
                    self.progress.notify_all()
            n += 1

    def wait_for_more(self, count: int, timeout: float) -> None:
        """Block until ``count`` more casts were accepted (the traffic flows)."""
        with self.progress:
            goal = len(self.accepted) + count
            assert self.progress.wait_for(lambda: len(self.accepted) >= goal, timeout), (
                f"casts stalled at {len(self.accepted)} accepted"
            )


class Caller(threading.Thread):
    """Calls in a loop until stopped; records each call's outcome and duration."""

    def __init__(self, client: Any) -> None:
        super().__init__(name="fault-caller", daemon=True)
        self.client = client
        self.outcomes: list[tuple[str, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                assert self.client.call({}, "echo", value=i) == i
                outcome = "ok"
            except (rpcframe.MessagingTimeout, rpcframe.ClientSendError) as exc:
                outcome = type(exc).__name__
            except Exception as exc:  # reported by the test as an unclean end
                outcome = f"unexpected {type(exc).__name__}: {exc}"
            self.outcomes.append((outcome, time.monotonic() - started))
            i += 1


def _broker_running() -> bool:
    try:
        return brokers.rabbitmqctl("eval", "rabbit:is_running().", timeout=60).strip() == "true"
    except (OSError, subprocess.SubprocessError):
        return False


def _ensure_broker_running() -> None:
    if not _broker_running():
        brokers.rabbitmqctl("start_app", timeout=180)
    brokers.rabbitmqctl("await_startup", "--timeout", "180", timeout=200)


@pytest.fixture
def names() -> Iterator[tuple[str, str]]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"fault_x{tag}", f"fault_{tag}"
    yield exchange, topic
    _ensure_broker_running()
    brokers.delete_queues(prefixes=(topic,))
    brokers.delete_exchanges([exchange])


def _transport(exchange: str) -> rpcframe.Transport:
    conf = brokers.conf_for_exchange(exchange)
    # Durable queues keep confirmed casts across the broker restart; a short
    # backoff keeps the test short.
    url = brokers.RABBIT_URL + "?amqp_durable_queues=true&rabbit_retry_backoff=1"
    return rpcframe.get_rpc_transport(conf, url)


def test_no_accepted_cast_is_lost_and_calls_end_in_time_across_broker_faults(names):
    exchange, topic = names
    server_transport = _transport(exchange)
    client_transport = _transport(exchange)
    counter = Counter()
    server = rpcframe.get_rpc_server(
        server_transport, rpcframe.Target(topic=topic, server="s1"), [counter]
    )
    server.start()
    target = rpcframe.Target(topic=topic)
    caster = Caster(rpcframe.get_rpc_client(client_transport, target, timeout=CAST_TIMEOUT))
    caller = Caller(rpcframe.get_rpc_client(client_transport, target, timeout=CALL_TIMEOUT))
    try:
        caster.start()
        caller.start()
        caster.wait_for_more(200, 30)
        for _ in range(3):
            brokers.rabbitmqctl("close_all_connections", "rpcframe fault test")
            caster.wait_for_more(200, CAST_TIMEOUT)
        brokers.rabbitmqctl("stop_app", timeout=180)
        brokers.rabbitmqctl("start_app", timeout=180)
        caster.wait_for_more(200, CAST_TIMEOUT + 30)
    finally:
        caster.stop.set()
        caller.stop.set()
        caster.join(CAST_TIMEOUT + 10)
        caller.join(CALL_TIMEOUT * 2 + 10)
        _ensure_broker_running()
    try:
        assert not caster.is_alive() and not caller.is_alive()
        accepted = set(caster.accepted)
        assert len(accepted) > 1000
        missing = counter.wait_for(accepted, 60)
        assert not missing, (
            f"{len(missing)} accepted casts never arrived, e.g. {sorted(missing)[:10]}"
        )
        unclean = [o for o, _ in caller.outcomes if o.startswith("unexpected")]
        assert not unclean, unclean[:5]
        late = [(o, round(d, 2)) for o, d in caller.outcomes if d > CALL_TIMEOUT + CALL_SLACK]
        assert not late, f"calls that outlived their timeout: {late[:5]}"
        assert sum(1 for o, _ in caller.outcomes if o == "ok") > 100
        after = rpcframe.get_rpc_client(client_transport, target, timeout=CALL_TIMEOUT * 4)
        assert after.call({}, "echo", value="still serving") == "still serving"
        print(
            f"casts: {len(accepted)} accepted, {len(caster.refused)} refused; calls: "
            + ", ".join(
                f"{sum(1 for o, _ in caller.outcomes if o == kind)} {kind}"
                for kind in sorted({o for o, _ in caller.outcomes})
            )
        )
    finally:
        server.stop()
        server.wait()
        client_transport.cleanup()
        server_transport.cleanup()
