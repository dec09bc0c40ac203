"""The call an endpoint is running: its deadline, and whether its caller cancelled it.

While an endpoint method runs, :func:`current_call` returns a :class:`Call`::

    def resize(self, ctxt, instance):
        call = rpcframe.rpc.current_call()
        for step in plan(instance):
            if call.cancelled:
                return None          # the caller gave up: stop early
            do(step, timeout=call.time_remaining())

Calls and streams made from inside an endpoint inherit what is left of its
deadline (a nested call never outlives the call that made it) and fail at
once with :class:`~rpcframe.exceptions.CallCancelled` when it was cancelled.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator

from rpcframe import exceptions
from rpcframe.identity import Sender

__all__ = ["Call", "current_call"]


class Call:
    """One request being handled, as the endpoint sees it. Thread-safe.

    :ivar id: the call's ``_msg_id`` (None for a cast).
    :ivar method: the endpoint method's name.
    :ivar deadline: UNIX time after which the caller no longer waits, or
        None when the caller did not say (oslo.messaging callers, casts).
    :ivar sender: who sent it (:func:`~rpcframe.rpc.current_sender`).
    """

    __slots__ = ("id", "method", "deadline", "sender", "_event", "_reason", "_callbacks")

    def __init__(
        self, id: str | None, method: str, deadline: float | None, sender: Sender | None
    ) -> None:
        self.id = id
        self.method = method
        self.deadline = deadline
        self.sender = sender
        # Made when first needed: most calls are never waited on nor cancelled.
        self._event: threading.Event | None = None
        self._reason = ""
        self._callbacks: list[Callable[[], None]] | None = None

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled the call or a server limit ended it."""
        return bool(self._reason)

    def _the_event(self) -> threading.Event:
        with _LOCK:
            if self._event is None:
                self._event = threading.Event()
                if self._reason:
                    self._event.set()
            return self._event

    @property
    def cancel_reason(self) -> str:
        """Why :attr:`cancelled` is true ("" while it is not)."""
        return self._reason

    def time_remaining(self) -> float | None:
        """Seconds until the caller stops waiting (never negative), or None if unbounded."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.time())

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Block until the call is cancelled or ``timeout`` passes; return :attr:`cancelled`."""
        return self._the_event().wait(timeout)

    def add_cancel_callback(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` once when the call is cancelled (at once if it already is).

        It runs in the thread that learnt of the cancel; keep it short.
        """
        with _LOCK:
            if not self._reason:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn()

    def _cancel(self, reason: str) -> None:
        with _LOCK:
            if self._reason:
                return
            self._reason = reason or "cancelled"
            event = self._event
            callbacks, self._callbacks = self._callbacks or [], None
        if event is not None:
            event.set()
        for fn in callbacks:
            try:
                fn()
            except Exception:  # an endpoint's callback must not break the server
                import logging

                logging.getLogger(__name__).exception("A cancel callback failed")

    def __repr__(self) -> str:
        state = f" cancelled ({self._reason})" if self.cancelled else ""
        return f"<Call {self.method!r} id={self.id}{state}>"


#: Guards every Call's cancel state: cancels and waits are rare, and one lock
#: costs nothing per call (a lock per call would).
_LOCK = threading.Lock()

_current: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    "rpcframe_call", default=None
)


def current_call() -> Call | None:
    """The request the calling endpoint is handling, or None outside an endpoint."""
    return _current.get()


@contextlib.contextmanager
def running(call: Call) -> Iterator[None]:
    """Make ``call`` what :func:`current_call` returns for the block."""
    token = _current.set(call)
    try:
        yield
    finally:
        _current.reset(token)


def enter(call: Call) -> contextvars.Token[Call | None]:
    """:func:`running` without a context manager, for the server's hot path."""
    return _current.set(call)


def leave(token: contextvars.Token[Call | None]) -> None:
    _current.reset(token)


def inherited_timeout(timeout: float) -> float:
    """``timeout``, shortened to what is left of the calling endpoint's deadline.

    Raises CallCancelled when the endpoint's own call was cancelled, and
    MessagingTimeout when its deadline has already passed.
    """
    call = _current.get()
    if call is None:
        return timeout
    if call.cancelled:
        raise exceptions.CallCancelled(
            f"the call {call.method!r} making this one was cancelled: {call.cancel_reason}"
        )
    left = call.time_remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise exceptions.MessagingTimeout(
            f"the call {call.method!r} making this one has passed its deadline", timeout=timeout
        )
    return min(timeout, left)
