"""Helpers for tests of the ``rpcframe`` command: it in a child process, and brokers that fail.

:class:`Command` runs ``python -m rpcframe ...`` from the checkout and reads
its output as it comes, so that a test can wait for a line (never for a
time) before it interrupts the command. :class:`SilentPort` is a TCP port
that accepts connections and never says a word, a broker that hangs;
:data:`REFUSED_URL` is one that nothing listens on.
"""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT

__all__ = ["REFUSED_SHOWN", "REFUSED_URL", "WAIT", "Command", "SilentPort"]

#: Nothing listens on port 1: connecting is refused at once.
REFUSED_URL = "rabbit://guest:guest@127.0.0.1:1/"
#: REFUSED_URL as the command may show it.
REFUSED_SHOWN = "rabbit://guest:****@127.0.0.1:1/"

#: Seconds a test waits for a line, or for the command to end.
WAIT = 30.0


class Command:
    """``rpcframe *argv`` running in a child process; see the module documentation."""

    def __init__(self, *argv: str) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpcframe", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._arrived: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines), name=f"read-{name}")
            for stream, lines, name in (
                (self.proc.stdout, self.out, "out"),
                (self.proc.stderr, self.err, "err"),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: object, lines: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)
            self._arrived.put(line)

    def wait_for(self, text: str, timeout: float = WAIT) -> None:
        """Return once a line of the command's output contains ``text``."""
        ends = time.monotonic() + timeout
        while True:
            try:
                line = self._arrived.get(timeout=max(0.0, ends - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {text!r} within {timeout} s; out={self.out} err={self.err}")
            if text in line:
                return

    def interrupt(self) -> None:
        """Ctrl-C."""
        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = WAIT) -> tuple[int, float]:
        """The exit status and the seconds the command ran; fails if it runs on."""
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s; out={self.out} err={self.err}")
        elapsed = time.monotonic() - self.started
        for reader in self._readers:
            reader.join(timeout)
        return status, elapsed

    def __enter__(self) -> Command:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill the command if it still runs, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(WAIT)
        for reader in self._readers:
            reader.join(WAIT)


class SilentPort:
    """A listening socket that never answers; :meth:`wait_for_a_connection` sees a peer arrive."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"rabbit://guest:guest@127.0.0.1:{self.port}/"
        self.accepted: list[socket.socket] = []

    def wait_for_a_connection(self, timeout: float = WAIT) -> None:
        self.sock.settimeout(timeout)
        conn, _ = self.sock.accept()
        self.accepted.append(conn)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()
