"""Interleaved rounds: how the benchmarks split a count and order what they compare.

A shared machine's speed drifts by tens of percent over minutes, so figures
measured minutes apart say as much about the drift as about what is
measured. Every benchmark here therefore measures in rounds: each round runs
a chunk of every side, in one order in even rounds and the other in odd
ones, so that the drift weighs on all sides alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

__all__ = ["in_turn", "shares"]

_T = TypeVar("_T")


def shares(count: int, parts: int) -> list[int]:
    """``count`` split into ``parts`` shares that differ by one at most."""
    return [count // parts + (1 if i < count % parts else 0) for i in range(parts)]


def in_turn(order: Sequence[_T], round_number: int) -> Sequence[_T]:
    """The order a round takes ``order`` in: as given in even rounds, reversed in odd ones."""
    return order if round_number % 2 == 0 else order[::-1]
