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
from collections.abc import Callable

from tests.functional.tcp_proxy import TcpProxy

__all__ = ["LatencyProxy"]


class _DelayLine:
    """Bytes read from ``source`` are written to ``sink`` ``delay`` seconds later."""

    def __init__(
        self,
        source: socket.socket,
        sink: socket.socket,
        delay: float,
        drop: Callable[[socket.socket], None],
    ) -> None:
        self._source = source
        self._sink = sink
        self._delay = delay
        self._drop = drop
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
                self._drop(sock)


class LatencyProxy(TcpProxy):
    """Relays ``127.0.0.1:<port>`` to ``target``, ``delay`` seconds late each way."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        super().__init__(target)
        self.delay = delay

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            source.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = _DelayLine(source, sink, self.delay, self._drop)
        self._spawn(line.write, "latency-proxy-write")
        line.read()
