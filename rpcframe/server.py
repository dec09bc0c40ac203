"""MessageHandlingServer: a listener, an executor and their lifecycle.

RPC servers and notification listeners are both this: one named thread takes
messages from the transport, but only when a worker is free, and hands each
to the executor. Subclasses say how to subscribe (``_create_listener``) and
how to handle one message (``_process_incoming``); the handler must settle
(ack or requeue) what it is given.

Lifecycle, as in oslo.messaging: ``start()`` begins taking messages;
``stop()`` stops taking new ones and returns quickly; ``wait()`` lets the
messages already taken finish (at most ``[rpcframe] server_stop_timeout``
seconds) and releases the workers. ``wait()`` before ``stop()`` blocks until
another thread stops the server. A waited-for server may be started again.
"""

from __future__ import annotations

import abc
import logging
import threading
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
        self._poll_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- subclass hooks -----------------------------------------------------

    @abc.abstractmethod
    def _create_listener(self) -> base.Listener:
        """Subscribe to the transport; raise ServerListenError on failure."""

    @abc.abstractmethod
    def _process_incoming(self, incoming: Any) -> None:
        """Handle one message (or batch) on a worker; settle it."""

    def _on_received(self, incoming: base.IncomingMessage) -> None:  # noqa: B027 - optional hook
        """Called on the polling thread as each message arrives (RPC acks here)."""

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
            self._executor = self._executor_cls(size, self._name)
            try:
                self.listener = self._create_listener()
            except exceptions.TransportDriverError as exc:
                raise ServerListenError(getattr(self, "target", None), exc) from exc
            self._stopping = threading.Event()
            self._poll_thread = threading.Thread(
                target=self._poll_loop,
                args=(self.listener, self._executor, self._stopping),
                name=f"{self._name}-poll",
                daemon=True,
            )
            self._state = _RUNNING
            self._poll_thread.start()
            self._state_changed.notify_all()

    def stop(self) -> None:
        """Stop taking new messages; messages already taken keep running."""
        with self._lock:
            if self._state != _RUNNING:
                return
            self._state = _STOPPED
            self._stopping.set()
            listener, executor, thread = self.listener, self._executor, self._poll_thread
            self._state_changed.notify_all()
        assert executor is not None and thread is not None
        if listener is not None:
            listener.close()
        executor.release_waiters()
        thread.join()

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
        self._poll_thread = None
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

    # -- the polling thread -----------------------------------------------------

    def _poll_loop(
        self, listener: base.Listener | None, executor: Executor, stopping: threading.Event
    ) -> None:
        while listener is not None and executor.acquire():
            try:
                work = self._receive(listener)
            except Exception:  # the polling thread must not die
                LOG.exception("%s: receiving failed; subscribing again", self._name)
                executor.release()
                listener = self._listen_again(listener, stopping)
                continue
            if work is None:
                if not stopping.is_set():
                    LOG.warning(
                        "%s: the transport closed the listener; no more messages", self._name
                    )
                executor.release_waiters()
                return
            try:
                self._on_received(work)
            except Exception:  # one bad message must not stop the server
                LOG.exception("%s: dropping a message that could not be accepted", self._name)
                executor.release()
                continue
            executor.submit(self._process_incoming, work)

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
