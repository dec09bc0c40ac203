"""The argparse types of the subcommands' numbers: counts, durations, retries.

A value that makes no sense (no calls to time, a zero timeout, a retry count
below -1) is refused while the arguments are parsed: argparse prints the
usage and one line naming the option, and the command exits with status 2
before it touches a transport.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["add_timeout", "count", "seconds"]


def count(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, finite and more than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def add_timeout(parser: argparse.ArgumentParser, what: str, default: float = 10.0) -> None:
    """Give ``parser`` a ``--timeout``: seconds ``what`` (a phrase: "per call")."""
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=default,
        help=f"seconds {what} (default {default:g})",
    )
