"""The ``rpcframe`` command.

``rpcframe demo`` starts a server and a client and shows calls, a cast, a
remote error and a round-trip rate, on the embedded ``fake://`` transport by
default (no broker needed) or on any ``--url`` (:mod:`rpcframe.cli.demo`).
``rpcframe notify`` sends one notification and ``rpcframe listen`` prints
notifications as they arrive (:mod:`rpcframe.cli.notify`). ``rpcframe bench``
measures a transport (see :mod:`rpcframe.bench`).

This module owns the command line: the options common to every subcommand,
the subcommands' registration and the dispatch to the one asked for; each
subcommand's own arguments are defined beside its code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

import rpcframe
from rpcframe import bench
from rpcframe.cli import demo, notify

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpcframe", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    commands = parser.add_subparsers(dest="command", required=True)
    demo.add_command(commands)
    notify.add_commands(commands)
    bench.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``rpcframe`` console script."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args, out or sys.stdout)
    except rpcframe.MessagingException as exc:
        print(f"rpcframe: {exc}", file=sys.stderr)
        return 2
