"""``rpcframe ping``: is a server there, and how long does it take to answer?

It calls ``oslo_rpc_server_ping``, which a server answers with ``"pong"``
when its ``rpc_ping_enabled`` option is set (oslo.messaging's and
rpcframe's alike), and prints the round trip::

    $ rpcframe ping --url rabbit://guest:guest@localhost/ --topic compute
    pong from host1 in 1.84 ms

Without ``--server`` the ping goes to the topic, and whichever server takes
it answers; an rpcframe server names itself when it takes a call (the
call's ``server``), so the line says which one it was. ``--count N`` sends N
pings one after another and ends with a summary per server; ``--watch``
sends one every ``--interval`` seconds until Ctrl-C (or ``--count``), each
line showing the latest latency of every server heard so far. A ping's time
includes handing it to the broker: the first one's includes connecting.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO

from rpcframe import exceptions
from rpcframe.cli import calls, deadline, failures, values
from rpcframe.rpc.dispatcher import PING_METHOD

__all__ = ["add_command"]

#: What the summary calls a server that answered without naming itself
#: (an oslo.messaging server does not announce the calls it takes).
_UNNAMED = "an unnamed server"


@dataclasses.dataclass
class _Latencies:
    """The round trips of one server's pongs, in seconds."""

    last: float = 0.0
    total: float = 0.0
    lowest: float = float("inf")
    highest: float = 0.0
    count: int = 0

    def add(self, seconds: float) -> None:
        self.last = seconds
        self.total += seconds
        self.lowest = min(self.lowest, seconds)
        self.highest = max(self.highest, seconds)
        self.count += 1

    def summary(self) -> str:
        return (
            f"{self.count} pong{'s' if self.count != 1 else ''}, min/avg/max "
            f"{_ms(self.lowest)}/{_ms(self.total / self.count)}/{_ms(self.highest)} ms"
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _ping_once(session: calls.Session, args: argparse.Namespace) -> tuple[str, float] | None:
    """One ping: the server that answered and the round trip, or None if no pong came in time."""
    client = session.client
    started = time.perf_counter()
    handle = session.send(
        args.timeout, "send the ping", lambda: client.call_async({}, PING_METHOD, announce_after=0)
    )
    try:
        handle.result()
    except exceptions.MessagingTimeout:
        return None
    except Exception as exc:  # noqa: BLE001 - whatever the server answered, in one line
        server = handle.server or args.server
        if _does_not_answer_pings(exc):
            who = f"the server {server}" if server else "the server"
            raise failures.CommandFailed(
                f"{who} does not answer pings: set rpc_ping_enabled in its configuration"
            ) from None
        raise failures.CommandFailed(calls.remote_error(PING_METHOD, exc, server)) from None
    finally:
        handle.cancel()  # Ctrl-C: the server is told; after the reply, nothing happens
    return handle.server or args.server or _UNNAMED, time.perf_counter() - started


def _does_not_answer_pings(exc: BaseException) -> bool:
    if isinstance(exc, exceptions.RemoteError):
        return exc.exc_type == "NoSuchMethod"
    return isinstance(exc, exceptions.NoSuchMethod)


def _rounds(args: argparse.Namespace) -> Iterable[int]:
    if args.count is None:
        return itertools.count(1) if args.watch else range(1, 2)
    return range(1, args.count + 1)


def _ping(args: argparse.Namespace, out: TextIO) -> int:
    servers: dict[str, _Latencies] = {}
    sent = lost = 0
    several = args.watch or (args.count or 1) > 1
    # Never set: waiting on it paces --watch, and Ctrl-C ends the wait.
    pause = threading.Event()
    with calls.opened(args) as session:
        try:
            next_at = time.monotonic()
            for seq in _rounds(args):
                if args.watch:
                    deadline.wait(pause, max(0.0, next_at - time.monotonic()))
                    next_at = time.monotonic() + args.interval
                pong = _ping_once(session, args)
                sent += 1
                if pong is None:
                    lost += 1
                    if not several:
                        raise calls.no_reply(f"to {PING_METHOD}", args.timeout)
                else:
                    servers.setdefault(pong[0], _Latencies()).add(pong[1])
                out.write(_line(seq, pong, servers, args) + "\n")
                out.flush()
        except KeyboardInterrupt:
            if several:
                _summarize(out, servers, sent, lost, args)
            raise
    if several:
        _summarize(out, servers, sent, lost, args)
    if lost:
        raise failures.CommandFailed(
            f"{lost} of {sent} pings got no reply within {args.timeout:g} s", failures.TIMED_OUT
        )
    return failures.DONE


def _line(
    seq: int,
    pong: tuple[str, float] | None,
    servers: dict[str, _Latencies],
    args: argparse.Namespace,
) -> str:
    """What one ping printed: JSON, or a line for people with the servers' latest latencies."""
    if args.json:
        record: dict[str, Any] = {"seq": seq, "time": time.time()}
        if pong is None:
            record.update(server=None, latency_ms=None, error="timeout")
        else:
            server = None if pong[0] == _UNNAMED else pong[0]
            record.update(server=server, latency_ms=round(pong[1] * 1000, 3))
        return json.dumps(record, sort_keys=True)
    said = (
        f"no pong within {args.timeout:g} s"
        if pong is None
        else f"pong from {pong[0]} in {_ms(pong[1])} ms"
    )
    if not args.watch:
        return f"{seq}: {said}" if args.count and args.count > 1 else said
    latest = "  ".join(f"{name} {_ms(each.last)} ms" for name, each in sorted(servers.items()))
    return f"{time.strftime('%H:%M:%S')} {seq}: {said}" + (f"  | {latest}" if latest else "")


def _summarize(
    out: TextIO, servers: dict[str, _Latencies], sent: int, lost: int, args: argparse.Namespace
) -> None:
    """The end of several pings: how many were answered, and each server's latencies."""
    if args.json or not sent:
        return
    out.write(f"--- {sent} pings to {args.topic}, {sent - lost} answered, {lost} lost\n")
    for name, each in sorted(servers.items()):
        out.write(f"{name}: {each.summary()}\n")
    out.flush()


def add_command(commands: Any) -> None:
    """Add ``ping`` to the ``rpcframe`` command's subparsers."""
    ping = commands.add_parser(
        "ping",
        help="ping the servers of a topic and show how long they take to answer",
        description="Call oslo_rpc_server_ping (answered by servers whose rpc_ping_enabled "
        "is set) and print the round trip and the server that answered. Exits 0 when "
        "every ping was answered, 1 if a server does not answer pings or the broker "
        "cannot be reached, 2 for a bad option, 3 if a ping got no reply within "
        "--timeout, 130 on Ctrl-C (after a summary of --watch or --count pings).",
    )
    calls.add_target_options(ping, "to wait for each pong, sending included")
    ping.add_argument(
        "--count", type=values.count(1), help="send this many pings (default 1; --watch: no end)"
    )
    ping.add_argument(
        "--watch",
        action="store_true",
        help="ping every --interval seconds until Ctrl-C, showing each server's latency",
    )
    ping.add_argument(
        "--interval",
        type=values.seconds,
        default=1.0,
        help="seconds between the starts of --watch pings (default 1)",
    )
    ping.set_defaults(run=_ping)
