"""Shared test configuration: broker availability and the CI rule.

Tests that need a real service ask for it through :func:`require_service`.
On a developer's machine a missing service skips the test with the reason;
with ``RPCFRAME_REQUIRE_BROKERS=1`` (set by ``.ci/run``) it fails instead,
so CI can never pass by skipping.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_BROKERS = os.environ.get("RPCFRAME_REQUIRE_BROKERS", "") not in ("", "0", "false", "no")


#: Why a test that needs green threads is skipped in a threaded process.
def pytest_configure(config: pytest.Config) -> None:
    # oslo.messaging's queue manager, which the interop tests run, names a
    # service after its process group's leader, and fails where that leader
    # has exited (a job runner that started this run and went away). Such a
    # run leads a process group of its own.
    if not os.path.exists(f"/proc/{os.getpgrp()}"):
        with contextlib.suppress(OSError):
            os.setpgrp()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests marked ``patched_only`` unless the process is patched.

    They run in ``tox -e eventlet``; elsewhere they are deselected, not
    skipped, so that a skip in CI always means something is missing.
    """
    from rpcframe import green

    if green.patched():
        return
    kept = [item for item in items if item.get_closest_marker("patched_only") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


def service_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip (or, in CI, fail) unless ``host:port`` accepts connections."""
    if service_reachable(host, port):
        return
    reason = f"{name} is not reachable at {host}:{port}"
    if REQUIRE_BROKERS:
        pytest.fail(f"{reason} and RPCFRAME_REQUIRE_BROKERS is set", pytrace=False)
    pytest.skip(reason)


def delete_redis_keys(prefix: str) -> None:
    """Delete what a test left in the local Redis under ``prefix`` (streams, records)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    except (redis.RedisError, OSError):
        pass  # Redis is not here: nothing was left in it
    finally:
        client.close()


#: The checkout: where the test suite's own processes start.
ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, timeout: float = 50.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process, warnings off; what it printed, whatever its exit.

    For what must start from a clean process: eventlet's monkey-patching, or
    a check that something was never imported. It starts in the checkout, so
    it may import ``tests``.
    """
    return subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )


@contextlib.contextmanager
def child_process(command: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A process of the test suite's, in the checkout; its standard input closes at the end.

    Closing it is how such a process is told to stop; it is killed if it
    has not within 30 s.
    """
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        yield proc
    finally:
        stop_child(proc)


def stop_child(proc: subprocess.Popen[str]) -> None:
    """Tell a child of the suite's to stop (close its standard input); kill it after 30 s."""
    assert proc.stdin is not None
    with contextlib.suppress(OSError):
        proc.stdin.close()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class _Waiting(logging.Handler):
    """Sets an event when a record whose message contains ``text`` is emitted."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@contextlib.contextmanager
def logged(logger_name: str, text: str) -> Iterator[threading.Event]:
    """Yield an Event set once ``logger_name`` logs a message containing ``text``.

    For log lines written by another thread: wait on the event instead of
    checking captured logs at a moment the line may not be written yet.
    """
    handler = _Waiting(text)
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.seen
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
