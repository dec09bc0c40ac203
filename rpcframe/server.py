"""MessageHandlingServer: a listener, workers that take turns, and their lifecycle.

RPC servers and notification listeners are both this. Their workers take
turns receiving (leader/follower, kept by :class:`rpcframe.turns.Turns`):
one worker at a time waits on the transport and handles what it receives
itself, with no hand-off on the way. Short requests are all handled by
the receiving worker, without a thread switch; when one takes longer than ``[rpcframe]
server_handover_delay``, an idle worker takes over the receiving (one is
started if none is idle and the pool is not full). A server never takes
more messages than it has workers: when all of them are busy nobody
receives and the rest stay in the broker for other servers. So that a
transport which pushes messages ahead of time (RabbitMQ) does not hold them
for it either, the server keeps its listener's window at what its free
workers can start (:meth:`~rpcframe.drivers.base.Listener.window`).
Subclasses say how to subscribe (``_create_listener``) and how to handle
one message (``_process_incoming``), which must settle (ack or requeue)
what it is given.

Lifecycle, as in oslo.messaging: ``start()`` begins taking messages;
``stop()`` stops taking new ones and returns quickly; ``wait()`` lets the
messages already taken finish (at most ``[rpcframe] server_stop_timeout``
seconds) and releases the workers. The three run in that order whatever
order threads call them in: ``stop()`` first waits for ``start()`` to have
run, ``wait()`` for ``stop()``; each runs once per cycle, however many
threads call it (the others wait for it to finish), and a ``start()`` after
a completed ``stop()`` begins a new cycle. Each takes oslo's keyword
arguments: ``log_after`` (seconds before a waiting caller logs "Possible
hang", default :data:`DEFAULT_LOG_AFTER`, 0 never) and ``timeout`` (seconds
before it gives up with :class:`~rpcframe.exceptions.TaskTimeout`).
"""

from __future__ import annotations

import abc
import contextvars
import functools
import logging
import threading
import time
import warnings
from typing import Any

from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from rpcframe import exceptions, green, handoffs, options
from rpcframe.drivers import base
from rpcframe.executors import Executor
from rpcframe.turns import Turns

__all__ = [
    "DEFAULT_LOG_AFTER",
    "ExecutorLoadFailure",
    "MessageHandlingServer",
    "MessagingServerError",
    "ServerListenError",
    "TaskTimeout",
]

LOG = logging.getLogger(__name__)

ExecutorLoadFailure = exceptions.ExecutorLoadFailure
MessagingServerError = exceptions.MessagingServerError
ServerListenError = exceptions.ServerListenError
TaskTimeout = exceptions.TaskTimeout

#: Seconds a start(), stop() or wait() waits for its turn before it logs a
#: possible hang (its ``log_after`` argument overrides it; 0 never logs).
DEFAULT_LOG_AFTER = 30

EXECUTOR_NAMESPACE = "rpcframe.executors"

_STEPS = ("start", "stop", "wait")
_NOT_RUN, _RUNNING, _DONE = "not run", "running", "done"

#: Per worker thread: the pool that counts it as finishing its message, and
#: since when, if any. (A context variable, not a threading.local: each
#: thread and each green thread has its own, and reading one is cheap in
#: both worlds.)
_finishing_in: contextvars.ContextVar[tuple[Turns, float] | None] = contextvars.ContextVar(
    "rpcframe_finishing_in", default=None
)


def _load_executor(name: str) -> type[Executor]:
    try:
        manager: stevedore_driver.DriverManager = stevedore_driver.DriverManager(
            EXECUTOR_NAMESPACE, name
        )
    except stevedore_exception.NoMatches:
        from importlib.metadata import entry_points

        known = sorted(ep.name for ep in entry_points(group=EXECUTOR_NAMESPACE))
        raise ExecutorLoadFailure(
            name, f"no executor named {name!r}; known: {', '.join(known)}"
        ) from None
    executor_cls: type[Executor] = manager.driver  # type: ignore[assignment]
    return executor_cls


class MessageHandlingServer(abc.ABC):
    """Connects a transport to a dispatcher through an executor.

    :param transport: the transport to listen on.
    :param dispatcher: what handles each message.
    :param executor: ``"threading"`` (default) or ``"eventlet"`` (deprecated).
    """

    #: One worker at a time receives, even where the driver allows concurrent
    #: polls: a batch listener's batches would otherwise be split between
    #: workers collecting at the same time.
    _receive_alone = False

    #: Seconds before the first attempt to listen again after a transport
    #: failure; it doubles up to 30 s while the attempts fail.
    relisten_delay = 0.5

    #: How many messages one free worker takes at a time (a batch listener's
    #: batch size; None: no bound): the listener's window is this many per
    #: free worker (see :meth:`rpcframe.drivers.base.Listener.window`).
    _window_unit: int | None = 1

    def __init__(self, transport: Any, dispatcher: Any, executor: str | None = None) -> None:
        if executor is not None:
            # oslo.messaging deprecates the argument itself, and eventlet with it.
            warnings.warn(
                "Using the 'executor' argument is deprecated: the eventlet executor is "
                "now deprecated. Threading will be the only execution model available.",
                category=DeprecationWarning,
                stacklevel=3,
            )
        if executor == "eventlet":
            warnings.warn(
                "Eventlet usages are deprecated and the removal of Eventlet from "
                "OpenStack is planned, for this reason the Eventlet executor is "
                "deprecated. Start migrating your stack to the threading executor. "
                "Please also start considering removing your internal Eventlet "
                "usages. in version '2025.1' and will be removed in version '2026.1'",
                category=DeprecationWarning,
                stacklevel=3,
            )
        self.conf = transport.conf
        options.register_core(self.conf)
        self.transport = transport
        self.dispatcher = dispatcher
        self.executor_type = executor or "threading"
        self._executor_cls = _load_executor(self.executor_type)
        self._lock = threading.RLock()
        self._steps_changed = threading.Condition(self._lock)
        self._cycle = dict.fromkeys(_STEPS, _NOT_RUN)
        self._pending: tuple[Executor, base.Listener] | None = None  # stopped, not waited for
        self._executor: Executor | None = None
        self.listener: base.Listener | None = None
        self._turns: Turns | None = None

    # -- subclass hooks -----------------------------------------------------

    @abc.abstractmethod
    def _create_listener(self) -> base.Listener:
        """Subscribe to the transport; raise ServerListenError on failure."""

    @abc.abstractmethod
    def _process_incoming(self, incoming: Any) -> None:
        """Handle one message (or batch) on a worker; settle it."""

    def _on_received(self, incoming: base.IncomingMessage) -> None:  # noqa: B027 - optional hook
        """Called as each message arrives, before the turn to receive is passed on
        (RPC acknowledges here)."""

    def _receive(self, listener: base.Listener) -> Any:
        """Take the next unit of work from the listener; None when it closed."""
        return listener.poll(None)

    @property
    def _name(self) -> str:
        return f"rpcframe-{type(self).__name__}"

    # -- lifecycle ------------------------------------------------------------

    def start(
        self,
        override_pool_size: int | None = None,
        *,
        log_after: float = DEFAULT_LOG_AFTER,
        timeout: float | None = None,
    ) -> None:
        """Start taking messages. A second start while running does nothing."""
        self._step("start", None, lambda: self._start(override_pool_size), log_after, timeout)

    def stop(self, *, log_after: float = DEFAULT_LOG_AFTER, timeout: float | None = None) -> None:
        """Stop taking new messages (after start() has run); taken messages keep running."""
        self._step("stop", "start", self._stop, log_after, timeout)

    def wait(self, *, log_after: float = DEFAULT_LOG_AFTER, timeout: float | None = None) -> None:
        """After stop() has run, let taken messages finish (bounded) and clean up."""
        self._step("wait", "stop", self._wait, log_after, timeout)

    def _step(
        self,
        step: str,
        after: str | None,
        run: Any,
        log_after: float,
        timeout: float | None,
    ) -> None:
        """Run ``step`` once in this cycle, after ``after`` has run (see the module doc)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            if step == "start" and self._cycle["stop"] == _DONE:
                self._cycle = dict.fromkeys(_STEPS, _NOT_RUN)
            cycle = self._cycle
            if after is not None:
                self._wait_until(
                    lambda: cycle[after] == _DONE,
                    f"{step} is waiting for {after} to complete",
                    log_after,
                    deadline,
                )
            if cycle[step] == _RUNNING:
                self._wait_until(
                    lambda: cycle[step] != _RUNNING,
                    f"{step} is waiting for another thread to complete",
                    log_after,
                    deadline,
                )
                return
            if cycle[step] == _DONE:
                if step == "start":
                    LOG.warning(
                        "The server has already been started. Ignoring the redundant "
                        "call to start()."
                    )
                return
            cycle[step] = _RUNNING
        try:
            run()
        finally:
            with self._lock:
                cycle[step] = _DONE
                self._steps_changed.notify_all()

    def _wait_until(self, done: Any, what: str, log_after: float, deadline: float | None) -> None:
        """Wait (lock held) until ``done()``.

        Logs once after ``log_after`` seconds; gives up at ``deadline``.
        """
        log_at = time.monotonic() + log_after if log_after else None
        while not done():
            now = time.monotonic()
            if log_at is not None and now >= log_at:
                LOG.warning("Possible hang: %s", what)
                log_at = None
            if deadline is not None and now >= deadline:
                raise TaskTimeout(what)
            wakes = [t - now for t in (log_at, deadline) if t is not None]
            self._steps_changed.wait(min(wakes) if wakes else None)

    def _start(self, override_pool_size: int | None) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:  # stopped but never waited for: finish that first
            self._shutdown(*pending)
        size = override_pool_size or self.conf.executor_thread_pool_size
        executor = self._executor_cls(size, self._name)
        try:
            listener = self._create_listener()
        except exceptions.TransportDriverError as exc:
            raise ServerListenError(getattr(self, "target", None), exc) from exc
        self.listener = listener
        self._executor = executor
        turns = self._turns = Turns(
            executor,
            size,
            listener,
            self.transport.capabilities.concurrent_poll and not self._receive_alone,
            self.conf.rpcframe.server_handover_delay,
            self._window_unit,
        )
        # Workers are given their pool: one may first run after stop() has
        # already let go of it (a green thread, say, scheduled late).
        turns.work = functools.partial(self._work, turns)
        turns.start(turns.work)

    def _stop(self) -> None:
        turns, executor, listener = self._turns, self._executor, self.listener
        self._turns = self._executor = None
        if turns is not None:
            turns.stop()
        if executor is not None and listener is not None:
            self._pending = (executor, listener)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._shutdown(*pending)

    def _shutdown(self, executor: Executor, listener: base.Listener) -> None:
        timeout = self.conf.rpcframe.server_stop_timeout
        if not executor.shutdown(timeout):
            LOG.warning(
                "%s: some messages were still being handled %.1f s after stop(); "
                "wait() gives up on them",
                self._name,
                timeout,
            )
        listener.cleanup()

    def reset(self) -> None:  # noqa: B027 - a no-op hook, as in oslo.messaging
        """Called on SIGHUP by service frameworks; nothing to do."""

    # -- the workers --------------------------------------------------------------

    def _finishing(self) -> None:
        """Say that this worker's endpoint has returned; only sending is left.

        A server about to start a worker for the next message does not when
        one is only finishing (sending a reply, waiting for its confirm) and
        replies have been quick: that one will be back in a moment, and the
        pool stays as small as the concurrency really is (see
        :meth:`Turns.finished`).
        """
        turns = self._turns
        if turns is not None and _finishing_in.get() is None:
            # The pool counted, whatever happens to self._turns.
            _finishing_in.set((turns, turns.finishing()))
            turns.pass_if_pending()

    def _work(self, turns: Turns) -> None:
        """One worker: wait for the turn, receive, handle what came, and again."""
        cooperative = green.patched()
        try:
            while True:
                counted = _finishing_in.get()
                if counted is not None:
                    _finishing_in.set(None)
                    counted[0].finished(counted[1])
                listener = turns.take()
                if listener is None:
                    return
                if handoffs.hook is not None:
                    handoffs.hook("turns.receive")
                try:
                    work = self._receive(listener)
                except Exception:  # a receiving failure must not end the server
                    LOG.exception("%s: receiving failed; subscribing again", self._name)
                    turns.replace(self._listen_again(listener, turns.stopping))
                    continue
                if work is None:
                    if not turns.stopping.is_set():
                        LOG.warning(
                            "%s: the transport closed the listener; no more messages", self._name
                        )
                    turns.stop()
                    return
                try:
                    self._on_received(work)
                except Exception:  # one bad message must not stop the server
                    LOG.exception("%s: dropping a message that could not be accepted", self._name)
                    continue
                turns.handling(turns.work)
                try:
                    self._process_incoming(work)
                except Exception:  # a worker outlives any one message
                    LOG.exception("%s: unexpected error while handling a message", self._name)
                finally:
                    turns.handled()
                if cooperative and listener.pending():
                    # Green threads are never preempted: a worker whose next
                    # message is already there (a requeued one, say) would
                    # not block, so it lets the others run first.
                    time.sleep(0)
        finally:
            turns.leave()

    def _listen_again(
        self, broken: base.Listener, stopping: threading.Event
    ) -> base.Listener | None:
        """Subscribe again after a transport failure, backing off; None once stopping."""
        broken.close()
        delay = self.relisten_delay
        while not stopping.wait(delay):
            try:
                listener = self._create_listener()
            except exceptions.MessagingException as exc:
                LOG.warning(
                    "%s: cannot listen again yet (%s); retrying in %.0f s", self._name, exc, delay
                )
                delay = min(delay * 2, 30.0)
                continue
            with self._lock:
                if not stopping.is_set():
                    self.listener = listener
                    LOG.info("%s: listening again", self._name)
                    return listener
            listener.close()
        return None
