"""Executors: where servers and listeners run the work they receive.

An executor runs submitted work on a bounded number of workers. Servers ask
for a free worker *before* taking the next message from the transport
(``acquire``), so a busy server leaves messages in the broker for its peers
instead of hoarding them in memory.

``threading`` (the default) is a pool of named threads created on demand.
``eventlet`` runs work in green threads; it is deprecated upstream, optional
(``pip install rpcframe[eventlet]``) and imported only when asked for. Both
are plugins under the ``rpcframe.executors`` entry point.
"""

from __future__ import annotations

import abc
import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from rpcframe import exceptions

__all__ = ["EventletExecutor", "Executor", "ThreadingExecutor"]

LOG = logging.getLogger(__name__)

_STOP = None


class Executor(abc.ABC):
    """Runs work on at most ``max_workers`` workers.

    ``acquire`` blocks until a worker is free (or ``release_waiters`` is
    called); ``submit`` then hands it work and never blocks. ``shutdown``
    waits, up to ``timeout`` seconds, for submitted work to finish.
    """

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name

    @abc.abstractmethod
    def acquire(self) -> bool:
        """Wait for a free worker; False if woken by ``release_waiters`` instead."""

    @abc.abstractmethod
    def release_waiters(self) -> None:
        """Wake every ``acquire`` that is waiting, making it return False."""

    @abc.abstractmethod
    def release(self) -> None:
        """Give back a worker obtained by ``acquire`` without submitting work."""

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the worker obtained by the last ``acquire``."""

    @abc.abstractmethod
    def shutdown(self, timeout: float | None = None) -> bool:
        """Finish submitted work and stop the workers; True if all finished in time."""


class ThreadingExecutor(Executor):
    """A pool of up to ``max_workers`` threads, started as work arrives."""

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        super().__init__(max_workers, name)
        # A queue of free-worker tokens: cheaper than threading.Semaphore,
        # which is written in Python on top of a Condition.
        self._free: queue.SimpleQueue[bool] = queue.SimpleQueue()
        for _ in range(max_workers):
            self._free.put(True)
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._idle = 0

    def acquire(self) -> bool:
        if self._free.get():
            return True
        self._free.put(False)  # pass the stop token on to the next waiter
        return False

    def release_waiters(self) -> None:
        self._free.put(False)

    def release(self) -> None:
        self._free.put(True)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                n = len(self._threads) + 1
                thread = threading.Thread(
                    target=self._worker, name=f"{self.name}-worker-{n}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._work.put((fn, args))

    def _worker(self) -> None:
        work = self._work
        while True:
            item = work.get()
            if item is _STOP:
                return
            fn, args = item
            try:
                fn(*args)
            except BaseException:
                LOG.exception("Unhandled error in %s worker", self.name)
            finally:
                with self._lock:
                    self._idle += 1
                self._free.put(True)

    def shutdown(self, timeout: float | None = None) -> bool:
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
            self._idle = 0
        for _ in threads:
            self._work.put(_STOP)
        deadline = None if timeout is None else time.monotonic() + timeout
        finished = True
        current = threading.current_thread()
        for thread in threads:
            if thread is current:  # wait() called from an endpoint: cannot join itself
                continue
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(left)
            finished = finished and not thread.is_alive()
        return finished


class EventletExecutor(Executor):
    """Green-thread executor (deprecated upstream; needs ``rpcframe[eventlet]``)."""

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        super().__init__(max_workers, name)
        try:
            import eventlet  # optional: imported only when this executor is asked for
        except ImportError as exc:
            raise exceptions.ExecutorLoadFailure(
                "eventlet", "eventlet is not installed: pip install 'rpcframe[eventlet]'"
            ) from exc
        if not eventlet.patcher.is_monkey_patched("thread"):
            # Green threads spawned from an unpatched thread would never run.
            raise exceptions.ExecutorLoadFailure(
                "eventlet", "the process is not monkey-patched (call eventlet.monkey_patch() first)"
            )
        warnings.warn(
            "the eventlet executor is deprecated, as eventlet is; use 'threading'",
            DeprecationWarning,
            stacklevel=3,
        )
        self._pool = eventlet.GreenPool(max_workers)
        self._stopping = False

    def acquire(self) -> bool:
        self._pool.sem.acquire()
        if self._stopping:
            self._pool.sem.release()
            return False
        self._pool.sem.release()
        return True

    def release_waiters(self) -> None:
        self._stopping = True

    def release(self) -> None:
        """Nothing to give back: acquire() reserves no green thread."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._pool.spawn_n(fn, *args)

    def shutdown(self, timeout: float | None = None) -> bool:
        import eventlet

        try:
            with eventlet.Timeout(timeout):
                self._pool.waitall()
        except eventlet.Timeout:
            return False
        return True
