"""MessageHandlingServer: a listener, workers that take turns, and their lifecycle.

RPC servers and notification listeners are both this. Their workers take
turns receiving (leader/follower): one worker at a time waits on the
transport; when a message arrives it hands the waiting over to the next
idle worker (starting a new one if none is idle and the pool is not full)
and handles the message itself. So a message is handled by the thread that
received it, with no hand-off on its way, and a server never takes more
messages than it has workers: when all of them are busy nobody receives and
the rest stay in the broker for other servers. Subclasses say how to
subscribe (``_create_listener``) and how to handle one message
(``_process_incoming``), which must settle (ack or requeue) what it is given.

Lifecycle, as in oslo.messaging: ``start()`` begins taking messages;
``stop()`` stops taking new ones and returns quickly; ``wait()`` lets the
messages already taken finish (at most ``[rpcframe] server_stop_timeout``
seconds) and releases the workers. ``wait()`` before ``stop()`` blocks until
another thread stops the server. A waited-for server may be started again.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from stevedore import driver as stevedore_driver
from stevedore import exception as stevedore_exception

from rpcframe import exceptions, opts
from rpcframe.drivers import base
from rpcframe.executors import Executor

__all__ = [
    "ExecutorLoadFailure",
    "MessageHandlingServer",
    "MessagingServerError",
    "ServerListenError",
]

LOG = logging.getLogger(__name__)

ExecutorLoadFailure = exceptions.ExecutorLoadFailure
MessagingServerError = exceptions.MessagingServerError
ServerListenError = exceptions.ServerListenError

EXECUTOR_NAMESPACE = "rpcframe.executors"

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"

#: Per worker thread: the pool that counts it as finishing its message, if any.
_worker_state = threading.local()


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

    #: Seconds before the first attempt to listen again after a transport
    #: failure; it doubles up to 30 s while the attempts fail.
    relisten_delay = 0.5

    def __init__(self, transport: Any, dispatcher: Any, executor: str | None = None) -> None:
        self.conf = transport.conf
        opts.register_core(self.conf)
        self.transport = transport
        self.dispatcher = dispatcher
        self.executor_type = executor or "threading"
        self._executor_cls = _load_executor(self.executor_type)
        self._lock = threading.RLock()
        self._state_changed = threading.Condition(self._lock)
        self._state = _NEW
        self._executor: Executor | None = None
        self.listener: base.Listener | None = None
        self._turns: _Turns | None = None

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

    def start(self, override_pool_size: int | None = None) -> None:
        """Start taking messages. A second start while running only warns."""
        with self._lock:
            if self._state == _RUNNING:
                LOG.warning("The server has already been started; ignoring the second start()")
                return
            if self._state == _STOPPED:
                self._drain()
            size = override_pool_size or self.conf.executor_thread_pool_size
            executor = self._executor_cls(size, self._name)
            try:
                self.listener = self._create_listener()
            except exceptions.TransportDriverError as exc:
                raise ServerListenError(getattr(self, "target", None), exc) from exc
            self._executor = executor
            self._turns = _Turns(
                executor, size, self.listener, self.transport._driver.capabilities.concurrent_poll
            )
            self._state = _RUNNING
            self._turns.grow(self._work)
            self._state_changed.notify_all()

    def stop(self) -> None:
        """Stop taking new messages; messages already taken keep running."""
        with self._lock:
            if self._state != _RUNNING:
                return
            self._state = _STOPPED
            turns = self._turns
            self._state_changed.notify_all()
        assert turns is not None
        turns.stop()

    def wait(self) -> None:
        """Block until stopped, then let taken messages finish (bounded) and clean up."""
        with self._lock:
            if self._state == _NEW:
                return
            while self._state == _RUNNING:
                self._state_changed.wait()
            executor = self._take_executor()
        # Drained without the lock, so start() and stop() elsewhere are not held up.
        self._shutdown(executor)

    def _take_executor(self) -> Executor | None:
        executor, self._executor = self._executor, None
        self.listener = None
        self._turns = None
        return executor

    def _drain(self) -> None:
        self._shutdown(self._take_executor())

    def _shutdown(self, executor: Executor | None) -> None:
        if executor is None:
            return
        timeout = self.conf.rpcframe.server_stop_timeout
        if not executor.shutdown(timeout):
            LOG.warning(
                "%s: some messages were still being handled %.1f s after stop(); "
                "wait() gives up on them",
                self._name,
                timeout,
            )

    def reset(self) -> None:  # noqa: B027 - a no-op hook, as in oslo.messaging
        """Called on SIGHUP by service frameworks; nothing to do."""

    # -- the workers --------------------------------------------------------------

    def _finishing(self) -> None:
        """Say that this worker's endpoint has returned; only sending is left.

        A server about to start a worker for the next message does not when
        one is only finishing (sending a reply, waiting for its confirm): that
        one will be back in a moment, and the pool stays as small as the
        concurrency really is.
        """
        turns = self._turns
        if turns is not None and getattr(_worker_state, "finishing", None) is None:
            _worker_state.finishing = turns  # the pool counted, whatever happens to self._turns
            turns.finishing(1)

    def _work(self) -> None:
        """One worker: take the turn to receive, pass it on, handle what came."""
        turns = self._turns
        assert turns is not None
        while True:
            counted = getattr(_worker_state, "finishing", None)
            if counted is not None:
                _worker_state.finishing = None
                counted.finishing(-1)
            with turns.turn() as listener:
                if listener is None:
                    return
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
            # The turn is passed on: another worker receives while this one works.
            turns.grow(self._work)
            try:
                self._process_incoming(work)
            except Exception:  # a worker outlives any one message
                LOG.exception("%s: unexpected error while handling a message", self._name)

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


class _Turns:
    """Whose turn it is to receive, and how many workers are idle.

    ``turn()`` is entered by a worker ready for a message. Where the driver
    allows only one ``poll`` at a time it is a lock held while receiving: a
    worker that got a message releases it (waking one waiting worker) before
    handling the message. Where the driver's listeners may be polled by many
    threads at once (``Capabilities.concurrent_poll``) idle workers all wait
    in ``poll`` and the transport wakes one per message. ``grow()`` starts
    another worker when none is idle and the pool is not full, so the number
    of workers follows the concurrency the server actually sees.
    """

    def __init__(
        self, executor: Executor, size: int, listener: base.Listener, concurrent_poll: bool
    ) -> None:
        self._executor = executor
        self._size = size
        self._listener: base.Listener | None = listener
        self._receiving: threading.Lock | None = None if concurrent_poll else threading.Lock()
        self._count = threading.Lock()
        self._workers = 0
        self._idle = 0
        self._finishing = 0
        self.stopping = threading.Event()

    @contextlib.contextmanager
    def turn(self) -> Iterator[base.Listener | None]:
        """Wait for the turn to receive; yields the listener (None once stopping)."""
        with self._count:
            self._idle += 1
        receiving = self._receiving
        if receiving is not None:
            receiving.acquire()
        try:
            yield None if self.stopping.is_set() else self._listener
        finally:
            if receiving is not None:
                receiving.release()
            with self._count:
                self._idle -= 1

    def finishing(self, change: int) -> None:
        """Count workers whose message is handled but for sending its result."""
        with self._count:
            self._finishing += change

    def grow(self, work: Any) -> None:
        """Start a worker if none is idle or about to be, and there is room."""
        with self._count:
            if (
                self._idle
                or self._finishing
                or self._workers >= self._size
                or self.stopping.is_set()
            ):
                return
            self._workers += 1
            self._idle += 1  # counted as idle from now, so only one is started
        try:
            self._executor.spawn(lambda: self._run(work))
        except BaseException:
            with self._count:
                self._workers -= 1
                self._idle -= 1
            raise

    def _run(self, work: Any) -> None:
        with self._count:
            self._idle -= 1  # turn() counts it again
        work()

    def replace(self, listener: base.Listener | None) -> None:
        """Use ``listener`` from now on (after a failure); None stops receiving."""
        self._listener = listener
        if listener is None:
            self.stopping.set()
        elif self.stopping.is_set():  # stop() ran while the new listener was being made
            listener.close()

    def stop(self) -> None:
        """Stop receiving: wake the workers that wait on the transport. Idempotent."""
        self.stopping.set()
        listener = self._listener
        if listener is not None:
            listener.close()
