"""Sender identity: who sent a request or a notification.

Every RPC request and notification rpcframe sends carries ``_sender``, a small
object naming the sending process::

    {"name": "nova-compute", "host": "compute-7", "pid": 4242}

``name`` is the notifier's ``publisher_id`` for notifications and the program
name (``sys.argv[0]`` without its directory) for RPC requests. oslo.messaging
peers ignore the key; messages from them simply have no sender.

Receivers see it without any change to the context they are given: RPC
endpoints call :func:`current_sender` while they run; notification endpoints
find it in ``metadata.sender``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["Sender", "current_sender", "local_sender"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sender:
    """The process that sent a message: a name, a host name and a process id."""

    name: str
    host: str
    pid: int

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "host": self.host, "pid": self.pid}

    @classmethod
    def from_wire(cls, value: Any) -> Sender | None:
        """Read a ``_sender`` value; None when absent or not well formed.

        A malformed sender never makes a message unusable: it only means the
        receiver does not learn who sent it.
        """
        if not isinstance(value, dict):
            return None
        name, host, pid = value.get("name"), value.get("host"), value.get("pid")
        if not isinstance(name, str) or not isinstance(host, str):
            return None
        if not isinstance(pid, int) or isinstance(pid, bool):
            return None
        return cls(name, host, pid)

    def __str__(self) -> str:
        return f"{self.name}@{self.host}:{self.pid}"


def _program_name() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if not argv0 or argv0 == "-c":
        return "python"
    base = os.path.basename(argv0)
    if base == "__main__.py":  # python -m package: the package names the program
        base = os.path.basename(os.path.dirname(argv0)) or base
    return base.removesuffix(".py")


class _Local:
    """This process's identity, computed once and again in a forked child."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.program = _program_name()
        # Built once: the RPC client adds it to every request it sends.
        self.wire = {"name": self.program, "host": self.host, "pid": self.pid}


_local = _Local()


def local_sender(name: str | None = None) -> Sender:
    """This process as a :class:`Sender`, under ``name`` (default: the program name)."""
    return Sender(name or _local.program, _local.host, _local.pid)


def local_wire(name: str | None = None) -> dict[str, Any]:
    """This process's ``_sender`` value. Do not modify the result."""
    if name is None or name == _local.program:
        return _local.wire
    return {"name": name, "host": _local.host, "pid": _local.pid}


_current: contextvars.ContextVar[Sender | None] = contextvars.ContextVar(
    "rpcframe_sender", default=None
)


def current_sender() -> Sender | None:
    """Who sent the RPC request the calling endpoint is handling.

    None outside an endpoint, and for requests from peers that do not say
    (oslo.messaging clients). Works in the endpoint's own thread (and in
    anything it runs under a copied ``contextvars`` context).
    """
    return _current.get()


def enter(sender: Sender | None) -> contextvars.Token[Sender | None]:
    """:func:`serving` without a context manager, for the server's hot path."""
    return _current.set(sender)


def leave(token: contextvars.Token[Sender | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def serving(sender: Sender | None) -> Iterator[None]:
    """Make ``sender`` what :func:`current_sender` returns for the block."""
    token = _current.set(sender)
    try:
        yield
    finally:
        _current.reset(token)
