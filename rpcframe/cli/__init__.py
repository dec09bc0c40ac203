"""The ``rpcframe`` command.

``rpcframe demo`` starts a server and a client and shows calls, a cast, a
remote error and a round-trip rate, on the embedded ``fake://`` transport by
default (no broker needed) or on any ``--url`` (:mod:`rpcframe.cli.demo`).
``rpcframe notify`` sends one notification and ``rpcframe listen`` prints
notifications as they arrive (:mod:`rpcframe.cli.notify`). ``rpcframe call``,
``rpcframe cast`` and ``rpcframe stream`` invoke a method on the servers of a
topic (:mod:`rpcframe.cli.calls`); ``rpcframe ping`` shows whether they
answer and how fast (:mod:`rpcframe.cli.ping`). ``rpcframe bench`` measures
a transport (see :mod:`rpcframe.bench`).

This module owns the command line: the options common to every subcommand,
the subcommands' registration, the dispatch to the one asked for, and what
the command says when that one fails: one line on stderr and an exit status
(:mod:`rpcframe.cli.failures`), never a traceback unless ``-v`` asks for
the details.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import TextIO

import rpcframe
from rpcframe import bench
from rpcframe.cli import calls, demo, failures, notify, ping

__all__ = ["main"]

_EPILOG = """\
exit status: 0 done; 1 failed (a broker not reached, a notification not sent,
fewer notifications than --count, a remote error, a demo call timed out, an
unexpected error); 2 a usage or configuration error (a bad option or argument,
configuration file, transport URL, driver or notification); 3 no reply within
--timeout (call, stream, ping); 130 interrupted (Ctrl-C), after stopping what
the command started. A failure is one line on stderr; -v adds the library's log
and the traceback of an unexpected error.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rpcframe",
        description=__doc__.split("\n\n")[0],
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log at debug level, the library included, and show tracebacks",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    notify.add_commands(commands)
    calls.add_commands(commands)
    ping.add_command(commands)
    bench.add_command(commands)
    return parser


@contextlib.contextmanager
def _logging(verbose: bool, name: str) -> Iterator[None]:
    """Log to stderr while a command runs: everything with -v, else the command's own lines.

    Without -v the library's log (each reconnection attempt, the traceback
    of a send that failed) would bury the one line that says what went
    wrong; the command reports those failures itself.
    """
    handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    level = root.level
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.setLevel(logging.DEBUG)
    else:
        handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
        handler.addFilter(logging.Filter(__name__))
        root.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(level)  # as it was, for whoever called main() in-process


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``rpcframe`` console script; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except KeyboardInterrupt:
        return failures.INTERRUPTED
    name = f"rpcframe {args.command}"
    with _logging(args.verbose, name):
        try:
            return int(args.run(args, out or sys.stdout))
        except KeyboardInterrupt:
            # Whatever the command started was stopped on the way out.
            _say(name, "interrupted")
            return failures.INTERRUPTED
        except failures.CommandFailed as exc:
            _say(name, str(exc))
            return exc.status
        except rpcframe.MessagingException as exc:
            _say(name, str(exc))
            return failures.USAGE if failures.is_usage_error(exc) else failures.FAILED
        except Exception as exc:  # noqa: BLE001 - one line (a traceback with -v), not a crash
            if args.verbose:
                traceback.print_exc()
            _say(name, f"unexpected error: {type(exc).__name__}: {exc}")
            return failures.FAILED


def _say(name: str, message: str) -> None:
    """One line on stderr; a message of several lines keeps its first."""
    lines = message.strip().splitlines() or ["(no message)"]
    print(f"{name}: {lines[0]}", file=sys.stderr, flush=True)
