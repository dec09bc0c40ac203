"""How an ``rpcframe`` subcommand fails: one line on stderr and an exit status.

A subcommand raises :class:`CommandFailed` for what it could not do (a
broker it cannot reach, a notification not sent); :func:`rpcframe.cli.main`
prints its message after the command's name and exits with its status. The
statuses, which ``rpcframe --help`` lists too:

=====  ================================================================
0      done
1      failed: a broker not reached, a notification not sent, fewer
       notifications than ``--count``, a remote error (``call``,
       ``stream``, ``ping``), a demo call that timed out, an unexpected
       error
2      a usage or configuration error: a bad option or argument,
       configuration file, transport URL, driver name or notification
3      no answer in time: the broker took the request of a ``call``,
       ``stream`` or ``ping`` but no reply came within ``--timeout``
130    interrupted (Ctrl-C)
=====  ================================================================
"""

from __future__ import annotations

from typing import Any

from rpcframe import exceptions
from rpcframe.url import mask_url

__all__ = [
    "DONE",
    "FAILED",
    "INTERRUPTED",
    "TIMED_OUT",
    "USAGE",
    "CommandFailed",
    "cannot_reach",
    "is_usage_error",
]

DONE = 0
FAILED = 1
USAGE = 2
TIMED_OUT = 3
INTERRUPTED = 130

#: What the library raises for a URL, option, driver or notification that
#: cannot be used as given.
_USAGE_ERRORS = (
    exceptions.ConfigurationError,
    exceptions.DriverLoadFailure,
    exceptions.InvalidNotification,
    exceptions.InvalidTransportURL,
)


class CommandFailed(Exception):
    """A subcommand could not do what it was asked; ``str()`` is the line to print.

    :param message: one line, without the command's name (main adds it).
    :param status: the exit status (:data:`FAILED` unless told).
    """

    def __init__(self, message: str, status: int = FAILED) -> None:
        super().__init__(message)
        self.status = status


def cannot_reach(url: Any, why: object) -> CommandFailed:
    """The failure of a command whose broker at ``url`` did not answer as needed."""
    return CommandFailed(f"cannot reach {mask_url(str(url))}: {why}")


def is_usage_error(exc: BaseException) -> bool:
    """Whether ``exc`` says that the command was given something unusable."""
    return isinstance(exc, _USAGE_ERRORS)
