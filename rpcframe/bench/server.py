"""The server side of ``rpcframe bench``: the same code serves rpcframe and oslo.messaging.

:class:`BenchEndpoint` is what the client calls; :class:`ServerProcess` runs
it in a process of its own (broker URLs), :class:`ServerThread` in this one
(``fake://``, whose broker lives in one process).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import threading
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "CONTROL_TIMEOUT",
    "BenchEndpoint",
    "ServerProcess",
    "ServerThread",
    "delete_queues",
    "load_library",
    "rss_bytes",
]

#: Bound on every control step (a server starting, a count coming back).
CONTROL_TIMEOUT = 120.0


class BenchEndpoint:
    """What the bench server offers: echo, a stream of chunks, a cast counter, its own memory."""

    def __init__(self) -> None:
        self._casts = 0
        self._cond = threading.Condition()

    def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    def chunks(self, ctxt: Any, count: int, size: int) -> Iterator[str]:
        """Yield ``count`` strings of ``size`` bytes (rpcframe streams them; oslo cannot)."""
        chunk = "x" * size
        for _ in range(count):
            yield chunk

    def bump(self, ctxt: Any, value: Any) -> None:
        with self._cond:
            self._casts += 1
            self._cond.notify_all()

    def reset_casts(self, ctxt: Any) -> None:
        with self._cond:
            self._casts = 0

    def casts_received(self, ctxt: Any, expected: int, timeout: float) -> int:
        """Block until ``expected`` casts arrived (or ``timeout``); return the count."""
        with self._cond:
            self._cond.wait_for(lambda: self._casts >= expected, timeout)
            return self._casts

    def rss(self, ctxt: Any) -> int:
        return rss_bytes()


def rss_bytes() -> int:
    """This process's resident memory in bytes (peak RSS where /proc is absent)."""
    with contextlib.suppress(OSError):
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def load_library(name: str) -> tuple[Any, Any]:
    """The messaging library and the ConfigOpts to use with it."""
    from oslo_config import cfg

    if name == "oslo.messaging":
        import oslo_messaging

        # oslo.messaging registers some options on the global CONF only.
        cfg.CONF([])
        return oslo_messaging, cfg.CONF
    import rpcframe

    conf = cfg.ConfigOpts()
    conf([])
    return rpcframe, conf


def serve(
    library: str, url: str, topic: str, ready: Any, stop: Any, executor: str = "threading"
) -> None:
    """Serve BenchEndpoint with ``library`` on ``url`` until ``stop`` is set."""
    lib, conf = load_library(library)
    transport = lib.get_rpc_transport(conf, url)
    server = lib.get_rpc_server(
        transport,
        lib.Target(topic=topic, server="bench-server"),
        [BenchEndpoint()],
        executor=executor,
    )
    server.start()
    ready.set()
    try:
        stop.wait()
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


class ServerProcess:
    """The bench server in a child process (spawned: no inherited threads)."""

    def __init__(self, library: str, url: str, topic: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(
            target=serve,
            args=(library, url, topic, self._ready, self._stop),
            name="rpcframe-bench-server",
            daemon=True,
        )

    @property
    def pid(self) -> int | None:
        """The server's process id (None until started)."""
        return self._process.pid

    def __enter__(self) -> ServerProcess:
        self._process.start()
        if not self._ready.wait(CONTROL_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the bench server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(10)


class ServerThread:
    """The bench server in this process (``fake://`` only)."""

    def __init__(self, library: str, url: str, topic: str) -> None:
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(
            target=serve,
            args=(library, url, topic, self._ready, self._stop),
            name="rpcframe-bench-server",
            daemon=True,
        )

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(CONTROL_TIMEOUT):
            raise RuntimeError("the bench server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def delete_queues(url: str, names: Sequence[str]) -> None:
    """Remove the bench's server queues on RabbitMQ (they outlive the server by design).

    Nothing to do on other transports: there are no queues to leave behind.
    """
    if not url.startswith(("rabbit:", "amqp:")):
        return
    with contextlib.suppress(Exception):
        import amqp

        from rpcframe.bench.raw import amqp_params

        conn = amqp.Connection(**amqp_params(url))
        conn.connect()
        try:
            for name in names:
                with contextlib.suppress(amqp.exceptions.AMQPError):
                    conn.channel().queue_delete(name)
        finally:
            conn.close()
