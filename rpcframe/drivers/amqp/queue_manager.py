"""Stable reply and fanout queue names: oslo.messaging's queue manager.

With ``use_queue_manager``, reply and fanout queues are named
``<hostname>:<processname>:<counter>`` instead of with a random id, so that
a restarted service declares the queues it had before and RabbitMQ does not
have to delete and create thousands of queues when a fleet restarts.

Every process of a host that uses the same host and process name shares
one counter, kept exactly as oslo.messaging keeps it, so that rpcframe and
oslo.messaging processes side by side draw from the same sequence:

* the file ``/dev/shm/<hostname>_<processname>_qmanager`` holds one line,
  ``<process group>:<counter>:<start time>`` (no newline): the *generation*
  of the service that last drew (the process group of the master and its
  workers, and the start time in clock ticks since boot of the group's
  leader, field 22 of ``/proc/<pid>/stat``, which tells a recycled id
  apart);
* a drawer holds an exclusive POSIX record lock (``lockf``, what
  oslo.concurrency's external locks take) on
  ``<lock_path>/oslo_read_shm_<hostname>_<processname>`` while it reads and
  rewrites the file;
* a drawer of the generation in the file takes the next number; a drawer of
  another generation starts the sequence again at 1 (the service restarted:
  its old queues are used again).

One rule is rpcframe's own: when the file names another generation that is
still running, this process continues that generation's sequence (and
leaves the file naming it) instead of starting again at 1, which would hand
out the numbers that generation's processes hold. oslo.messaging processes
of the generation in the file then continue the same sequence too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import IO

from rpcframe import exceptions
from rpcframe.drivers.amqp import errors

__all__ = ["QueueManager", "SHM_DIR"]

LOG = logging.getLogger(__name__)

#: Where the counters live (oslo.messaging's fixed choice: memory, gone at reboot).
SHM_DIR = "/dev/shm"

#: Bound on waiting for another process's lock; the lock is held for
#: one small read and write, so only a stuck process holds it this long.
LOCK_TIMEOUT = 30.0

#: POSIX record locks cannot be waited for with a deadline; the lock is
#: tried again after these pauses (seconds), growing up to the last.
_LOCK_PAUSES = (0.001, 0.005, 0.01, 0.05)

# Record locks belong to the process, not the thread: threads of one
# process take turns through these first.
_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()

#: Counter files this process has drawn from.
_drawn: set[str] = set()


def _thread_lock(path: str) -> threading.Lock:
    with _thread_locks_guard:
        return _thread_locks.setdefault(path, threading.Lock())


Generation = tuple[int, int]


def current_generation() -> Generation:
    """This process's (process group, start time of the group's leader).

    A group whose leader has exited (a job runner that started the service
    and went away) has no start time to read; its members all count as
    start time 0, which no running leader has, so they still share one
    generation. (oslo.messaging fails to name its queues there.)
    """
    group = os.getpgrp()
    leader = group or os.getpid()
    start = _start_time(leader)
    if start is None:
        LOG.debug(
            "queue manager: process group leader %d is gone; generation (%d, 0)", leader, group
        )
        return group, 0
    return group, start


def _start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``, split on blanks as oslo.messaging does.

    The same split must be used on both sides, or the two libraries would
    see different generations in one process group.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().split()[21])
    except (OSError, ValueError, IndexError):
        return None


def _running(generation: Generation) -> bool:
    """Whether the leader of that generation's process group still runs."""
    group, start = generation
    return group > 0 and _start_time(group) == start


class QueueManager:
    """Draws ``<hostname>:<processname>:<counter>`` names; thread- and process-safe.

    :param hostname: the ``hostname`` option.
    :param processname: the ``processname`` option.
    :param lock_path: the directory of the lock file (``[oslo_concurrency]
        lock_path``); None makes :meth:`next_name` raise ConfigurationError.
    """

    def __init__(
        self, hostname: str, processname: str, lock_path: str | None, shm_dir: str | None = None
    ) -> None:
        self.hostname = hostname
        self.processname = processname
        self.lock_path = lock_path
        self.counter_file = os.path.join(shm_dir or SHM_DIR, f"{hostname}_{processname}_qmanager")

    def lock_file(self) -> str:
        if not self.lock_path:
            raise exceptions.ConfigurationError(
                "[oslo_messaging_rabbit] use_queue_manager needs a lock directory shared "
                "with the other processes of this host: set [oslo_concurrency] lock_path "
                "(or the OSLO_LOCK_PATH environment variable)"
            )
        # oslo.concurrency turns path separators in a lock's name into '_'.
        name = f"oslo_read_shm_{self.hostname}_{self.processname}".replace(os.sep, "_")
        return os.path.join(self.lock_path, name)

    def next_name(self) -> str:
        """The next free name; raises ConfigurationError, or TransportBroken if the
        counter or its lock cannot be used."""
        return f"{self.hostname}:{self.processname}:{self._draw()}"

    def _draw(self) -> int:
        ours = current_generation()
        with self._locked():
            found = self._read()
            if found is None:
                generation, counter = ours, 1
            else:
                generation, counter = found[0], found[1] + 1
                known = self.counter_file in _drawn
                if generation != ours and not (known or _running(generation)):
                    # The service restarted: its queues are used again.
                    generation, counter = ours, 1
            self._write(generation, counter)
            _drawn.add(self.counter_file)
            return counter

    def _read(self) -> tuple[Generation, int] | None:
        with errors.mapped(f"cannot read the queue manager's counter {self.counter_file}"):
            try:
                with open(self.counter_file) as counter_file:
                    group, counter, start = counter_file.readline().split(":")
                    return (int(group), int(start)), int(counter)
            except (FileNotFoundError, ValueError):
                return None

    def _write(self, generation: Generation, counter: int) -> None:
        group, start = generation
        with (
            errors.mapped(f"cannot write the queue manager's counter {self.counter_file}"),
            open(self.counter_file, "w") as counter_file,
        ):
            counter_file.write(f"{group}:{counter}:{start}")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        path = self.lock_file()
        deadline = time.monotonic() + LOCK_TIMEOUT
        guard = _thread_lock(path)
        if not guard.acquire(timeout=LOCK_TIMEOUT):
            raise exceptions.TransportBroken(f"timed out waiting for the lock {path}")
        try:
            with errors.mapped(f"cannot open the queue manager's lock {path}"):
                os.makedirs(self.lock_path or ".", exist_ok=True)
                # Append mode, as oslo.concurrency: never truncate what is there.
                lock_file = open(path, "a")
            try:
                _lock_record(lock_file, path, deadline)
                try:
                    yield
                finally:
                    fcntl.lockf(lock_file, fcntl.LOCK_UN)
            finally:
                lock_file.close()
        finally:
            guard.release()


def _lock_record(lock_file: IO[str], path: str, deadline: float) -> None:
    pauses = iter(_LOCK_PAUSES)
    pause = _LOCK_PAUSES[0]
    while True:
        try:
            fcntl.lockf(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise errors.translate(exc, f"cannot lock {path}: {errors.describe(exc)}") from exc
        if time.monotonic() + pause > deadline:
            raise exceptions.TransportBroken(f"timed out waiting for the lock {path}")
        # Another process holds it for a moment: no timed wait exists for
        # record locks, so pause briefly and try again.
        threading.Event().wait(pause)
        pause = next(pauses, pause)
