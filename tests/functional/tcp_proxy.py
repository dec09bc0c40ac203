"""A TCP relay a test puts between one client and RabbitMQ, to cut that client off.

Only the connections through the relay break: other engineers' and other
tests' connections to the shared broker are untouched. While cut, the relay
accepts connections and closes them at once, so reconnection attempts fail
quickly, as they would against a broker that is down.

A *blackhole* (:meth:`TcpProxy.blackhole`) is the other kind of outage, a
network that silently drops everything: every connection, old or new,
stays open and nothing is passed on either way until :meth:`resume`; then
what was held back flows again, as after a healed partition.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

__all__ = ["TcpProxy"]


class TcpProxy:
    """Relays ``127.0.0.1:<port>`` to ``target``; :meth:`cut` and :meth:`resume` it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = False
        self._closed = False
        # Set while bytes flow; cleared during a blackhole.
        self._flowing = threading.Event()
        self._flowing.set()
        self._threads: list[threading.Thread] = []
        #: Set each time a connection is relayed through (cleared by the test).
        self.connected = threading.Event()

    def url(self) -> str:
        return f"rabbit://guest:guest@127.0.0.1:{self.port}/"

    def __enter__(self) -> TcpProxy:
        self._spawn(self._accept, "tcp-proxy-accept")
        return self

    def __exit__(self, *exc: Any) -> None:
        self._closed = True
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        with contextlib.suppress(OSError):
            self._server.close()
        self._drop_all()
        for thread in self._threads:
            thread.join(10)

    def cut(self) -> None:
        """Break every relayed connection and refuse new ones until :meth:`resume`."""
        with self._lock:
            self._cut = True
        self._drop_all()

    def blackhole(self) -> None:
        """Pass nothing on, either way, and close nothing, until :meth:`resume`."""
        self._flowing.clear()

    def resume(self) -> None:
        """End a cut or a blackhole."""
        with self._lock:
            self._cut = False
        self._flowing.set()

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                refuse = self._cut
            if refuse:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            self._spawn(self._relay, "tcp-proxy-up", client, upstream)
            self._spawn(self._relay, "tcp-proxy-down", upstream, client)
            self.connected.set()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                # Wait before reading: what the peer sends meanwhile stays in
                # the kernel's buffers, unacknowledged by nobody but TCP.
                while not self._flowing.wait(1.0):
                    if self._closed:
                        return
                data = source.recv(65536)
                if not data:
                    break
                while not self._flowing.wait(1.0):
                    if self._closed:
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def _drop_all(self) -> None:
        with self._lock:
            doomed = list(self._open)
        for sock in doomed:
            self._drop(sock)
