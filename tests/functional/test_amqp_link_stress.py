"""The link's state machine under stress: many threads, random delays at every hand-off.

Threads do on the links of one driver what its users do: senders wait for
publisher confirms (many at once on the sending link, with exclusive
declarations of new routes among them), pollers wait for deliveries on a
listener's link, settlers acknowledge from other threads, callers wait for
messages in a reply inbox, and each link's keeper reads and sends
heartbeats (a 2 s heartbeat: a beat every half second). The links' test
hook (``link._HOOK``) sleeps for a random moment at every hand-off between
threads (:data:`rpcframe.drivers.amqp.link.HANDOFFS`), so that the
interleavings the state machine must survive happen many times over.

Checked: every confirmed message arrives, none twice, nothing waits past
its bound, every hand-off point was passed, and no thread is left after
cleanup. A second test also breaks the connections at random moments; the
delivery is then at least once: every confirmed message to the listener
arrives, and duplicates are only counted. (The inbox, which consumes
without acknowledgements as reply inboxes do, loses what the broker had
sent on a connection that broke: at most once; its sends are mandatory, as
replies are, so those to a queue that was gone are not counted as
confirmed.)

The breaking test runs a third time on green threads, in an eventlet-patched
process of its own: there the reader learns of a broken connection from
the wake-up socket, not from its own, which is the path that once let a
reader wait on a socket number the next connection had taken.

The random delays come from a seed printed with any failure
(``RPCFRAME_STRESS_SEED`` replays one; thread scheduling still varies). The
size fits CI (well under 30 s); ``RPCFRAME_STRESS=big`` runs ten times as
many messages.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import faulthandler
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from oslo_config import cfg

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.drivers.amqp import link as link_module
from rpcframe.drivers.amqp.driver import RabbitDriver
from rpcframe.transport import TransportURL
from tests import brokers
from tests.conftest import run_python

pytestmark = [pytest.mark.broker, pytest.mark.slow]

BIG = os.environ.get("RPCFRAME_STRESS", "") == "big"
SCALE = 10 if BIG else 1
#: Messages per sender thread.
PER_SENDER = 600 * SCALE
SENDERS = 6
POLLERS = 3
SETTLERS = 2
INBOX_CALLERS = 3
#: One message in this many goes to the reply inbox instead of the listener.
INBOX_SHARE = 5
#: One in this many goes to a new exchange instead (nobody listens to it).
SIDE_SHARE = 20
#: Chance of a delay at a hand-off, and its longest duration (seconds).
DELAY_CHANCE = 0.3
DELAY_MAX = 0.002
#: Longest any one send or poll may take, and the whole run.
STEP_BOUND = 30.0
RUN_BOUND = 120.0 * SCALE


class Delays:
    """The hook: a random sleep at a hand-off, from one seeded generator per thread."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._local = threading.local()
        self._lock = threading.Lock()
        self.passed: collections.Counter[str] = collections.Counter()

    def __call__(self, point: str) -> None:
        rng = getattr(self._local, "rng", None)
        if rng is None:
            rng = self._local.rng = random.Random(f"{self.seed}/{threading.current_thread().name}")
        with self._lock:
            self.passed[point] += 1
        if rng.random() < DELAY_CHANCE:
            time.sleep(rng.random() * DELAY_MAX)


class Run:
    """One stress run's threads and what they saw; failures are collected, not raised."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.confirmed: set[str] = set()
        self.received: collections.Counter[str] = collections.Counter()
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        #: Exchanges declared for routes nobody listens to.
        self.sides: list[str] = []
        #: The confirmed messages sent to the reply inbox.
        self.replies: set[str] = set()

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                target(*args)
            except BaseException as exc:  # reported by the test
                self.fail(f"{name}: {type(exc).__name__}: {exc}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def fail(self, text: str) -> None:
        with self.lock:
            self.failures.append(text)
        self.stop.set()

    def got(self, body: bytes) -> None:
        with self.arrived:
            self.received[body.decode()] += 1
            self.arrived.notify_all()

    def wait_for_all(self, timeout: float, replies: bool) -> set[str]:
        """The confirmed messages (``replies``: those to the inbox too) still missing
        after at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            wanted = self.confirmed if replies else self.confirmed - self.replies
            while not wanted <= self.received.keys():
                left = deadline - time.monotonic()
                if left <= 0 or self.failures:
                    break
                self.arrived.wait(left)
            return wanted - self.received.keys()


def _bounded(run: Run, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``; a failure of the run if it took longer than STEP_BOUND."""
    started = time.monotonic()
    result = call(*args, **kwargs)
    took = time.monotonic() - started
    if took > STEP_BOUND:
        run.fail(f"{what} took {took:.1f} s")
    return result


def _sender(
    run: Run, driver: RabbitDriver, routes: list[base.Address], inbox: base.Address, index: int
) -> None:
    rng = random.Random(f"{run.seed}/sender-{index}")
    for n in range(PER_SENDER):
        if run.stop.is_set():
            return
        body = f"{index}-{n}"
        if n % SIDE_SHARE == SIDE_SHARE - 1:
            # A route nobody listens to, new: declared in an exclusive section
            # while the other threads wait and read.
            side = dataclasses.replace(routes[0], exchange=f"{routes[0].exchange}_side_{index}_{n}")
            with run.lock:
                run.sides.append(side.exchange)
            _bounded(run, f"declaring {side.exchange}", driver.send, side, b"side", timeout=20)
            continue
        to_inbox = n % INBOX_SHARE == 0
        address = inbox if to_inbox else rng.choice(routes)
        try:
            # As replies are sent: mandatory, so that one whose inbox queue
            # is missing (its connection broke) comes back.
            _bounded(
                run,
                f"sending {body}",
                driver.send,
                address,
                body.encode(),
                mandatory=to_inbox,
                timeout=20,
            )
        except (exceptions.MessagingTimeout, exceptions.MessageUndeliverable):
            continue  # not confirmed: it may or may not arrive
        with run.lock:
            run.confirmed.add(body)
            if to_inbox:
                run.replies.add(body)


def _poller(run: Run, listener: base.Listener, settle: collections.deque[Any]) -> None:
    while not run.stop.is_set():
        message = _bounded(run, "polling", listener.poll, 0.5)
        if message is None:
            continue
        run.got(message.body)
        settle.append(message)


def _settler(run: Run, settle: collections.deque[Any], done: threading.Event) -> None:
    while not (done.is_set() and not settle):
        try:
            message = settle.popleft()
        except IndexError:
            if run.stop.wait(0.001):
                return
            continue
        message.ack()


def _caller(run: Run, inbox: base.Inbox) -> None:
    while not run.stop.is_set():
        message = _bounded(run, "waiting in the inbox", inbox.poll, 0.5)
        if message is not None:
            run.got(message.body)


def _breaker(run: Run, driver: RabbitDriver, every: float) -> None:
    links = [driver._publisher.link, *(consumer.link for consumer in driver._consumers)]
    while not run.stop.wait(run.rng.uniform(0.0, every)):
        link = run.rng.choice(links)
        link.broken(link.generation, OSError("broken by the stress test"))


@pytest.fixture
def names(request: pytest.FixtureRequest) -> tuple[str, str]:
    brokers.require_rabbitmq()
    tag = uuid.uuid4().hex[:10]
    exchange, topic = f"stress_x{tag}", f"stress_{tag}"
    request.addfinalizer(lambda: brokers.delete_exchanges([exchange]))
    request.addfinalizer(lambda: brokers.delete_queues(prefixes=(topic,)))
    return exchange, topic


@contextlib.contextmanager
def _delays(seed: int) -> Iterator[Delays]:
    delays = Delays(seed)
    previous, link_module._HOOK = link_module._HOOK, delays
    try:
        yield delays
    finally:
        link_module._HOOK = previous


def _stress(names: tuple[str, str], seed: int, break_every: float | None) -> Run:
    exchange, topic = names
    conf = cfg.ConfigOpts()
    conf([])
    conf.register_opts(opts.rabbit_opts, group=opts.RABBIT_GROUP)
    conf.set_override("rabbit_qos_prefetch_count", 50, group=opts.RABBIT_GROUP)
    url = TransportURL.parse(conf, brokers.RABBIT_URL + "?heartbeat_timeout_threshold=2")
    before = set(threading.enumerate())
    run = Run(seed)
    driver = RabbitDriver(conf, url)
    try:
        routes = [base.Address(exchange, f"{topic}.{i}") for i in range(4)]
        listener = driver.listen(routes)
        inbox = driver.open_inbox()
        driver.send(routes[0], b"warm-up", timeout=20)  # the sending link exists
        settle: collections.deque[Any] = collections.deque()
        senders_done = threading.Event()
        for i in range(SENDERS):
            run.spawn(f"stress-sender-{i}", _sender, run, driver, routes, inbox.address, i)
        for i in range(POLLERS):
            run.spawn(f"stress-poller-{i}", _poller, run, listener, settle)
        for i in range(SETTLERS):
            run.spawn(f"stress-settler-{i}", _settler, run, settle, senders_done)
        for i in range(INBOX_CALLERS):
            run.spawn(f"stress-caller-{i}", _caller, run, inbox)
        if break_every is not None:
            run.spawn("stress-breaker", _breaker, run, driver, break_every)
        deadline = time.monotonic() + RUN_BOUND
        for thread in run.threads[:SENDERS]:
            thread.join(max(0.0, deadline - time.monotonic()))
        # The inbox consumes without acknowledgements (as reply inboxes do): what
        # the broker sent on a connection that then broke is gone. Only an
        # unbroken run promises it every message.
        left = max(1.0, min(60.0, deadline - time.monotonic()))
        missing = run.wait_for_all(left, replies=break_every is None)
        senders_done.set()
        if missing:
            run.fail(f"{len(missing)} confirmed messages never arrived, e.g. {sorted(missing)[:5]}")
        run.stop.set()
        for thread in run.threads:
            thread.join(STEP_BOUND)
        stuck = [thread.name for thread in run.threads if thread.is_alive()]
        if stuck:
            faulthandler.dump_traceback(sys.stderr)
            run.fail(f"threads still running: {stuck}")
        listener.close()
        inbox.close()
    finally:
        run.stop.set()
        driver.close()
        brokers.delete_exchanges(run.sides)
    # The driver joins its keepers when it closes; nothing of the run may remain.
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    if left:
        run.fail(f"threads left after close: {left}")
    return run


def _seed() -> int:
    return int(os.environ.get("RPCFRAME_STRESS_SEED") or random.SystemRandom().randrange(2**32))


@pytest.mark.timeout(int(RUN_BOUND * 2 + 120))
def test_many_threads_on_one_link_lose_nothing_duplicate_nothing_and_never_hang(names):
    seed = _seed()
    with _delays(seed) as delays:
        run = _stress(names, seed, break_every=None)
    assert not run.failures, f"seed {seed}: {run.failures[:5]}"
    assert len(run.confirmed) > SENDERS * PER_SENDER * 0.8, f"seed {seed}"
    twice = [body for body, count in run.received.items() if count > 1]
    assert not twice, f"seed {seed}: delivered more than once: {twice[:5]}"
    # The connections never broke here: the points of a reconnect are not passed.
    unused = link_module.HANDOFFS - delays.passed.keys()
    assert unused <= {"attempt.publish", "broken.unpublished", "broken.woken"}, (
        f"seed {seed}: hand-offs never passed: {sorted(unused)}"
    )


@pytest.mark.timeout(int(RUN_BOUND * 2 + 120))
def test_connections_broken_at_random_moments_lose_no_confirmed_message_and_never_hang(names):
    seed = _seed()
    with _delays(seed) as delays:
        run = _stress(names, seed, break_every=1.0)
    assert not run.failures, f"seed {seed}: {run.failures[:5]}"
    assert run.confirmed, f"seed {seed}: nothing was confirmed"
    unused = link_module.HANDOFFS - delays.passed.keys()
    assert not unused, f"seed {seed}: hand-offs never passed: {sorted(unused)}"
    twice = sum(1 for count in run.received.values() if count > 1)
    print(f"seed {seed}: {len(run.confirmed)} confirmed, {twice} delivered more than once")


#: The breaking run in an eventlet-patched process; prints what it saw as JSON.
GREEN_RUN = """
import warnings
warnings.filterwarnings("ignore")
import eventlet
eventlet.monkey_patch()
import json
import sys
from tests.functional import test_amqp_link_stress as stress
exchange, topic, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
with stress._delays(seed) as delays:
    run = stress._stress((exchange, topic), seed, break_every=1.0)
print(json.dumps({"failures": run.failures[:5], "confirmed": len(run.confirmed),
                  "passed": sorted(delays.passed)}))
"""


@pytest.mark.timeout(int(RUN_BOUND * 2 + 180))
def test_green_threads_on_broken_connections_lose_no_confirmed_message_and_never_hang(names):
    seed = _seed()
    done = run_python(GREEN_RUN, *names, str(seed), timeout=RUN_BOUND * 2 + 120)
    assert done.returncode == 0, f"seed {seed}: {done.stderr[-3000:]}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert not seen["failures"], f"seed {seed}: {seen['failures']}"
    assert seen["confirmed"], f"seed {seed}: nothing was confirmed"
    assert not link_module.HANDOFFS - set(seen["passed"]), f"seed {seed}: {seen['passed']}"
