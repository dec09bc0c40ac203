"""Blocking library calls run under a deadline, so that a command never hangs.

Starting a listener or a server connects to the broker, and the library
keeps trying for as long as its own options say (a minute and more on
RabbitMQ); stopping waits for starting to have finished. A command that
promises to end (``listen --duration``, ``notify --timeout``) runs such a
call in a thread of its own with :func:`within` and gives up on it at the
deadline; :func:`settle` does the same for a cleanup step, which must never
keep a command from exiting.

A call given up on is left to finish in its thread, a daemon one so that it
does not keep the process alive; the caller closes the transport under it,
which ends its connection attempts. Those threads, and the one in which
:func:`abandon` closes a transport whose closing would wait for such a call,
are the threads here that are not joined, on purpose.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import rpcframe
from rpcframe.cli import failures

__all__ = [
    "CLEANUP_GRACE",
    "SLACK",
    "Overdue",
    "abandon",
    "settle",
    "start",
    "stop",
    "wait",
    "within",
]

LOG = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds a library call given a timeout of its own may overrun it before
#: the command gives up on it (its own error says more, so it gets the chance).
SLACK = 2.0

#: Seconds a cleanup step (stopping a listener, closing a transport) may take.
CLEANUP_GRACE = 5.0


#: Seconds the main thread waits at most before it looks for a Ctrl-C again.
_SIGNAL_CHECK = 0.5


def wait(event: threading.Event, seconds: float | None) -> bool:
    """``event.wait(seconds)``, but a Ctrl-C ends it whichever thread the signal reached.

    The kernel may hand SIGINT to any thread; one that is not the main thread
    only flags it, and a main thread blocked on a lock without a timeout
    would not look at the flag until the lock was released. Waiting in
    slices makes it look at least every :data:`_SIGNAL_CHECK` seconds.
    """
    ends = None if seconds is None else time.monotonic() + seconds
    while True:
        left = _SIGNAL_CHECK if ends is None else min(_SIGNAL_CHECK, ends - time.monotonic())
        if event.wait(max(0.0, left)):
            return True
        if ends is not None and time.monotonic() >= ends:
            return False


class Overdue(Exception):
    """A call run by :func:`within` had not returned at its deadline.

    :param what: the call, as the error message names it ("start the listener").
    :param seconds: how long it was given.
    """

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"could not {what} within {seconds:g} s")
        self.what = what
        self.seconds = seconds


def within(seconds: float, what: str, call: Callable[[], T]) -> T:
    """``call()``'s result, or what it raised; Overdue if it takes over ``seconds``.

    The call runs in a daemon thread; on Overdue (or a KeyboardInterrupt
    while waiting) it is still running there.
    """
    outcome: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=run, name=f"rpcframe-cli: {what}", daemon=True)
    thread.start()
    if not wait(done, seconds):
        raise Overdue(what, seconds)
    thread.join()  # it has returned; this only reaps it
    if failure:
        raise failure[0]
    return outcome[0]


def settle(what: str, call: Callable[[], object], seconds: float = CLEANUP_GRACE) -> None:
    """Run the cleanup step ``call()`` under a deadline; a failure is logged, not raised.

    The command is ending (maybe because of another error, which must stay
    the one reported); a step that fails or overruns is said once and left.
    """
    try:
        within(seconds, what, call)
    except Overdue as exc:
        LOG.warning("%s; leaving it", exc)
    except Exception as exc:  # a cleanup never hides the command's outcome
        LOG.debug("could not %s: %s", what, exc, exc_info=True)


def abandon(what: str, call: Callable[[], object]) -> None:
    """Start the cleanup step ``call()`` in a daemon thread and do not wait for it.

    For a cleanup known to wait for a call given up on (closing a transport
    while its reply queue is still being opened waits for that): the command
    ends now, and the step finishes in its thread if the process lives on.
    """

    def run() -> None:
        try:
            call()
        except Exception as exc:  # a cleanup never hides the command's outcome
            LOG.debug("could not %s: %s", what, exc, exc_info=True)

    threading.Thread(target=run, name=f"rpcframe-cli: {what}", daemon=True).start()


def start(server: rpcframe.MessageHandlingServer, seconds: float, **options: Any) -> None:
    """``server.start(**options)`` (it subscribes on the broker) within ``seconds``.

    Raises CommandFailed ("cannot reach ...") if the broker did not let it
    subscribe in time. The library waits longer for a broker than a command
    may, and its ``stop()`` waits for ``start()`` to have finished: a start
    given up on is left in its thread, and closing the transport ends it.
    """
    url = server.transport.url
    try:
        within(seconds, "start", lambda: server.start(**options))
    except Overdue:
        raise failures.cannot_reach(url, f"not subscribed within {seconds:g} s") from None
    except rpcframe.ServerListenError as exc:
        raise failures.cannot_reach(url, exc.__cause__ or exc) from None


def stop(server: rpcframe.MessageHandlingServer) -> None:
    """Stop a server that :func:`start` started and let it finish, within :data:`CLEANUP_GRACE`."""

    def stop_and_wait() -> None:
        server.stop()
        server.wait()

    settle("stop the server", stop_and_wait)
