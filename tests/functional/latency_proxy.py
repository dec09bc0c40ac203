"""A TCP relay that delays every byte by a fixed time each way, like a distant broker.

A test puts it between one client (a server process's connections, say) and
RabbitMQ to see how that client behaves on a link with a long round trip.
Bytes keep their order and the relay keeps reading while earlier bytes are
held back, so the link has latency but no bandwidth limit: what a client
pipelines arrives pipelined, one delay later.
"""

from __future__ import annotations

import collections
import contextlib
import socket
import threading
import time
from typing import Any

__all__ = ["LatencyProxy"]


class _DelayLine:
    """Bytes read from ``source`` are written to ``sink`` ``delay`` seconds later."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float) -> None:
        self._source = source
        self._sink = sink
        self._delay = delay
        self._held: collections.deque[tuple[float, bytes]] = collections.deque()
        self._cond = threading.Condition()
        self._ended = False

    def read(self) -> None:
        try:
            while True:
                data = self._source.recv(65536)
                if not data:
                    break
                with self._cond:
                    self._held.append((time.monotonic() + self._delay, data))
                    self._cond.notify()
        except OSError:
            pass
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify()

    def write(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._held and not self._ended:
                        self._cond.wait()
                    if not self._held:
                        return
                    due, data = self._held[0]
                    left = due - time.monotonic()
                    if left > 0:
                        # Woken early only by new bytes, which are due later.
                        self._cond.wait(left)
                        continue
                    self._held.popleft()
                self._sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (self._source, self._sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class LatencyProxy:
    """Relays ``127.0.0.1:<port>`` to ``target``, ``delay`` seconds late each way."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    def __enter__(self) -> LatencyProxy:
        self._spawn(self._accept, "latency-proxy-accept")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(10)
        for sock in doomed:
            sock.close()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._open.extend((client, upstream))
            for source, sink, way in ((client, upstream, "up"), (upstream, client, "down")):
                line = _DelayLine(source, sink, self.delay)
                self._spawn(line.read, f"latency-proxy-{way}-read")
                self._spawn(line.write, f"latency-proxy-{way}-write")
