"""What each part of the wire protocol costs on RabbitMQ: ``rpcframe bench --protocol-costs``.

The targets of ``rpcframe bench --compare`` divide by bare py-amqp figures:
a round trip to a server that consumes without acknowledgements and replies
through the default exchange without waiting, and a confirmed publish into a
queue nobody consumes. The wire protocol rpcframe shares with oslo.messaging
asks the broker for more than that. This module measures, with bare py-amqp
and no framework, what each part of that work costs on its own, and
rpcframe's own calls and casts beside them, in rounds interleaved so that
the machine's drift touches every figure alike.

Calls add, one at a time, to the bare round trip: the request going through
a topic exchange; the request carrying an expiration; the server
acknowledging the request before replying; the reply being mandatory and
confirmed (the server waits for the confirm, on a connection of its own).
Then all of them together, which is the protocol.

Casts (each publish waits for its confirm) add, to the publish nobody
consumes: a consumer that takes them without acknowledging; a consumer that
acknowledges each; the topic exchange; then the topic exchange and the
acknowledging consumer, which is the protocol. A cast measurement with a
consumer ends when the consumer has taken the last cast (a request sent
after it comes back; the queue is first in, first out).

Besides the rate, every figure says how much CPU the client process, the
server process and, when the broker runs on this machine, the RabbitMQ node
spent per message (read from ``/proc``; absent where it cannot be read).
``/proc`` counts CPU in clock ticks (10 ms on most Linux systems), so those
figures need thousands of messages per round to mean anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rpcframe.bench.raw import BareClient, EchoServers, Variant, amqp_params
from rpcframe.bench.rounds import in_turn
from rpcframe.bench.server import ServerProcess, delete_queues, load_library

__all__ = ["CALLS", "CASTS", "Variant", "measure", "print_costs"]

#: The expiration of requests that carry one, in milliseconds.
_EXPIRATION = "30000"
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


CALLS = (
    Variant("bare round trip"),
    Variant("+ topic exchange", topic=True),
    Variant("+ expiration", expiration=True),
    Variant("+ ack before reply", ack=True),
    Variant("+ mandatory confirmed reply", confirmed_reply=True),
    Variant("protocol: all of these", True, True, True, True),
)
CASTS = (
    Variant("bare confirmed publish", consumer=False),
    Variant("+ consumer, no acknowledgements"),
    Variant("+ consumer acknowledging each", ack=True),
    Variant("+ topic exchange (no consumer)", topic=True, consumer=False),
    Variant("protocol: topic exchange, acknowledging consumer", topic=True, ack=True),
)


def _cpu_seconds(pid: int) -> float | None:
    """User and system CPU a process has used, from /proc (None where unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_pid(url_params: dict[str, Any]) -> int | None:
    """The local RabbitMQ node's process, if the URL points at this machine."""
    if url_params["host"].rsplit(":", 1)[0].strip("[]") not in _LOCAL_HOSTS:
        return None
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as comm:
                    if comm.read().strip() == "beam.smp":
                        return int(entry)
    return None


class _Accounts:
    """Rates and CPU per message of each measured row, chunk by chunk."""

    def __init__(self, broker: int | None) -> None:
        self._broker = broker
        self.rows: dict[str, dict[str, list[float]]] = {}

    @contextlib.contextmanager
    def chunk(self, row: str, count: int, server: int | None) -> Iterator[None]:
        pids = {"server": server, "broker": self._broker}
        before = {k: _cpu_seconds(p) if p else None for k, p in pids.items()}
        client, started = time.process_time(), time.perf_counter()
        yield
        elapsed = time.perf_counter() - started
        figures = self.rows.setdefault(row, {})
        figures.setdefault("per_s", []).append(count / elapsed)
        figures.setdefault("client_us", []).append((time.process_time() - client) / count * 1e6)
        for key, pid in pids.items():
            after = _cpu_seconds(pid) if pid else None
            start = before[key]
            if after is not None and start is not None:
                figures.setdefault(f"{key}_us", []).append((after - start) / count * 1e6)

    def medians(self) -> dict[str, dict[str, float]]:
        return {
            row: {k: round(statistics.median(v), 1) for k, v in figures.items()}
            for row, figures in self.rows.items()
        }


def measure(
    url: str,
    calls: int,
    casts: int,
    rounds: int,
    payload_size: int = 100,
    timeout: float = 30.0,
    progress: Callable[[str], None] = lambda what: None,
) -> dict[str, Any]:
    """Measure every variant and rpcframe's calls and casts; medians over ``rounds``."""
    import rpcframe

    params = amqp_params(url)
    accounts = _Accounts(_broker_pid(params))
    body = json.dumps({"method": "echo", "args": {"value": "x" * payload_size}})
    payload = "x" * payload_size
    topic = f"bench_costs_{uuid.uuid4().hex[:10]}"
    queues = {v: f"{topic}_{number}" for number, v in enumerate(dict.fromkeys(CALLS + CASTS))}
    with contextlib.ExitStack() as stack:
        stack.callback(delete_queues, url, [*queues.values(), topic, f"{topic}.bench-server"])
        servers = stack.enter_context(EchoServers(params, timeout))
        pids = {v: servers.start(queue, v) for v, queue in queues.items()}
        rpc_server = stack.enter_context(ServerProcess("rpcframe", url, topic))
        bare = BareClient(params, timeout)
        stack.callback(bare.close)
        _lib, conf = load_library("rpcframe")
        transport = rpcframe.get_rpc_transport(conf, url)
        stack.callback(transport.cleanup)
        client = rpcframe.get_rpc_client(
            transport, rpcframe.Target(topic=topic, server="bench-server"), timeout=timeout
        )

        def bare_calls(v: Variant) -> Callable[[int], None]:
            queue = queues[v]
            properties = {"expiration": _EXPIRATION} if v.expiration else {}

            def run(count: int) -> None:
                bare.round_trips(count, body, v.exchange(queue), queue, properties)

            return run

        def bare_casts(v: Variant) -> Callable[[int], None]:
            queue = queues[v]

            def run(count: int) -> None:
                bare.confirmed_publishes(count, body, v.exchange(queue), queue, {})
                if v.consumer:
                    bare.round_trips(1, body, v.exchange(queue), queue, {})  # behind the last cast
                else:
                    unconsumed.append(queue)

            return run

        def rpc_calls(count: int) -> None:
            for _ in range(count):
                client.call({}, "echo", value=payload)

        def rpc_casts(count: int) -> None:
            client.call({}, "reset_casts")
            for _ in range(count):
                client.cast({}, "bump", value=payload)
            received = client.call({}, "casts_received", expected=count, timeout=timeout)
            if received != count:
                raise RuntimeError(f"the rpcframe server received {received} of {count} casts")

        rows: list[tuple[str, Callable[[int], None], int | None, int]] = [
            *((f"calls: {v.name}", bare_calls(v), pids[v], calls) for v in CALLS),
            ("calls: rpcframe", rpc_calls, rpc_server.pid, calls),
            *((f"casts: {v.name}", bare_casts(v), pids[v], casts) for v in CASTS),
            ("casts: rpcframe", rpc_casts, rpc_server.pid, casts),
        ]
        unconsumed: list[str] = []

        def settle() -> None:
            """Empty the queues that casts nobody consumes went into (outside the timing)."""
            while unconsumed:
                bare.confirming.queue_purge(unconsumed.pop())

        for _name, work, _pid, _count in rows:  # warm-up
            work(min(calls, casts, 200))
            settle()
        for number in range(rounds):
            progress(f"round {number + 1} of {rounds}")
            for name, work, pid, count in in_turn(rows, number):
                with accounts.chunk(name, count, pid):
                    work(count)
                settle()
    return {"url_host": params["host"], "rounds": rounds, "figures": accounts.medians()}


def print_costs(report: dict[str, Any], out: TextIO) -> None:
    """The figures as a table; each ratio is to the first row of its kind."""
    header = f"{'':52s} {'per s':>8s} {'ratio':>6s} {'client':>7s} {'server':>7s} {'broker':>7s}"
    print(
        f"protocol costs on {report['url_host']} (medians of {report['rounds']} rounds; "
        "CPU in µs per message)",
        file=out,
    )
    base: dict[str, float] = {}
    for kind in ("calls", "casts"):
        print(f"{kind}:{header[len(kind) + 1 :]}", file=out)
        for row, figures in report["figures"].items():
            if not row.startswith(kind):
                continue
            first = base.setdefault(kind, figures["per_s"])
            cells = [
                f"{figures[key]:7.0f}" if key in figures else f"{'-':>7s}"
                for key in ("client_us", "server_us", "broker_us")
            ]
            print(
                f"  {row[len(kind) + 2 :]:50s} {figures['per_s']:8.0f} "
                f"{figures['per_s'] / first:6.3f} {' '.join(cells)}",
                file=out,
            )
