"""Executors: what kind of workers a server or listener runs.

A server's workers take turns receiving (see :mod:`rpcframe.server`); an
executor only says how a worker is started and how to wait for the workers
to finish. ``threading`` (the default) starts named threads. ``eventlet``
starts green threads; it is deprecated upstream, optional
(``pip install rpcframe[eventlet]``), needs a monkey-patched process, and is
imported only when asked for. Both are plugins under the
``rpcframe.executors`` entry point.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from rpcframe import exceptions

__all__ = ["EventletExecutor", "Executor", "ThreadingExecutor"]

LOG = logging.getLogger(__name__)


class Executor(abc.ABC):
    """Starts up to ``max_workers`` workers and waits for them to finish.

    Workers run until the function they were given returns; the server
    makes them return when it stops.
    """

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name

    @abc.abstractmethod
    def spawn(self, fn: Callable[[], Any]) -> None:
        """Start one worker running ``fn()``."""

    @abc.abstractmethod
    def shutdown(self, timeout: float | None = None) -> bool:
        """Wait for every worker to return; True if all did within ``timeout``."""


class ThreadingExecutor(Executor):
    """Workers are named threads (``<name>-worker-<n>``)."""

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        super().__init__(max_workers, name)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = 0

    def spawn(self, fn: Callable[[], Any]) -> None:
        with self._lock:
            self._started += 1
            thread = threading.Thread(
                target=self._run,
                args=(fn,),
                name=f"{self.name}-worker-{self._started}",
                daemon=True,
            )
            self._threads.append(thread)
        thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except BaseException:  # logged: a worker must not die silently
            LOG.exception("Unhandled error in %s worker", self.name)

    def shutdown(self, timeout: float | None = None) -> bool:
        with self._lock:
            threads = list(self._threads)
            self._threads.clear()
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
    """Workers are green threads (deprecated upstream; needs ``rpcframe[eventlet]``)."""

    def __init__(self, max_workers: int, name: str = "rpcframe") -> None:
        super().__init__(max_workers, name)
        try:
            import eventlet  # optional: imported only when this executor is asked for
        except ImportError as exc:
            raise exceptions.ExecutorLoadFailure(
                "eventlet", "eventlet is not installed: pip install 'rpcframe[eventlet]'"
            ) from exc
        if not eventlet.patcher.is_monkey_patched("thread"):
            # Green threads started from an unpatched thread would never run.
            raise exceptions.ExecutorLoadFailure(
                "eventlet", "the process is not monkey-patched (call eventlet.monkey_patch() first)"
            )
        warnings.warn(
            "the eventlet executor is deprecated, as eventlet is; use 'threading'",
            DeprecationWarning,
            stacklevel=3,
        )
        self._pool = eventlet.GreenPool(max_workers)

    def spawn(self, fn: Callable[[], Any]) -> None:
        self._pool.spawn_n(fn)

    def shutdown(self, timeout: float | None = None) -> bool:
        import eventlet

        try:
            with eventlet.Timeout(timeout):
                self._pool.waitall()
        except eventlet.Timeout:
            return False
        return True
