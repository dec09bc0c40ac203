"""An RPC server process on ZeroMQ for the functional tests.

Run as ``python -m tests.functional.zmq_server``.

Arguments: the transport URL, the topic and the server's name. It prints
``ready`` once it serves, ``reregistered`` when the name service
wrote its records again after Redis came back, and on stopping (its
standard input closed) ``casts <n>``: how many casts it ran.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

from oslo_config import cfg

import rpcframe


class Endpoint:
    def __init__(self, name: str) -> None:
        self.name = name
        self.casts = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def whoami(self, ctxt: Any) -> str:
        return self.name

    def record(self, ctxt: Any, n: int) -> None:
        with self.lock:
            self.casts += 1

    def count(self, ctxt: Any) -> int:
        with self.lock:
            return self.casts

    def block(self, ctxt: Any, seconds: float) -> str:
        print("blocking", flush=True)
        self.release.wait(seconds)
        return "done"


class _Announce(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if "registered again" in record.getMessage():
            print("reregistered", flush=True)


def main() -> None:
    url, topic, name = sys.argv[1:4]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("rpcframe.drivers.zmq").addHandler(_Announce())
    conf = cfg.ConfigOpts()
    conf([])
    transport = rpcframe.get_rpc_transport(conf, url)
    endpoint = Endpoint(name)
    server = rpcframe.get_rpc_server(
        transport, rpcframe.Target(topic=topic, server=name), [endpoint]
    )
    server.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes it
    endpoint.release.set()
    server.stop()
    server.wait()
    print(f"casts {endpoint.casts}", flush=True)
    transport.cleanup()


if __name__ == "__main__":
    main()
