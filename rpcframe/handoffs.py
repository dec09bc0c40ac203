"""Test hook points at the hand-offs of rpcframe's turn-taking schemes.

The server workers' turns (:mod:`rpcframe.server`), the reply waiter's
leader/follower scheme (:mod:`rpcframe.replies`) and the ZeroMQ node (its
I/O lock, the loop's wait and the senders' wake-ups:
:mod:`rpcframe.drivers.zmq.node`) call :func:`reached`, or the hook
directly, at every point where one thread hands something to another (a
turn, the inbox, a wake-up, a socket written while the loop may wait). In
production :data:`hook` is None and each call is one global lookup; a
stress test sets it to a function that sleeps a random moment, to
shake out orderings that the scheduler rarely produces (see
``tests/unit/test_stress.py``).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["hook", "installed", "reached"]

#: Called with the name of each hand-off point reached, or None (production).
hook: Callable[[str], None] | None = None


def reached(point: str) -> None:
    """Call the hook, if one is installed, for ``point``."""
    if hook is not None:
        hook(point)


class installed:
    """``with handoffs.installed(fn):`` runs the block with ``fn`` as the hook."""

    def __init__(self, fn: Callable[[str], None]) -> None:
        self._fn = fn

    def __enter__(self) -> None:
        global hook
        hook = self._fn

    def __exit__(self, *exc: object) -> None:
        global hook
        hook = None
