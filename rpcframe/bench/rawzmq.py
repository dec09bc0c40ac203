"""The raw pyzmq reference of ``rpcframe bench --compare`` on ``zmq://``.

:class:`RawZmq` measures what a hand-written pyzmq service does with no
framework: a REQ socket and a REP socket over TCP on the loopback, a server
thread that JSON-decodes each request and answers with a JSON reply, which
the caller decodes (one encode and one decode each way). Again doing oslo's
envelope work (the message JSON inside a JSON envelope, both ways). For
casts: a DEALER sending to a ROUTER that decodes each message and
acknowledges it, the sender waiting for every acknowledgement, which is what
"accepted" means for an rpcframe cast on ZeroMQ.

Measured in rounds alternating with rpcframe's calls and casts, as the other
references are, so the ratios compare the same moments of a noisy machine.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import zmq

from rpcframe.bench.bare import JsonWorkloads

__all__ = ["RawZmq"]

_STOP = b"stop"


class RawZmq(JsonWorkloads):
    """A REQ/REP pair and a DEALER/ROUTER pair on the loopback; a context manager."""

    def __init__(self, payload_size: int, warmup: int) -> None:
        self._payload = "x" * payload_size
        self._warmup = warmup
        self._ctx = zmq.Context()
        self._rep = self._ctx.socket(zmq.REP)
        self._router = self._ctx.socket(zmq.ROUTER)
        rep_port = self._rep.bind_to_random_port("tcp://127.0.0.1")
        router_port = self._router.bind_to_random_port("tcp://127.0.0.1")
        self._req = self._ctx.socket(zmq.REQ)
        self._dealer = self._ctx.socket(zmq.DEALER)
        self._req.connect(f"tcp://127.0.0.1:{rep_port}")
        self._dealer.connect(f"tcp://127.0.0.1:{router_port}")
        self._thread = threading.Thread(target=self._serve, name="bench-raw-zmq", daemon=True)

    def __enter__(self) -> RawZmq:
        self._thread.start()
        self.round_trips(self._warmup)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._req.send(_STOP)
        self._req.recv()
        self._thread.join(10)
        for sock in (self._req, self._dealer, self._rep, self._router):
            sock.close(0)
        self._ctx.term()

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._rep, zmq.POLLIN)
        poller.register(self._router, zmq.POLLIN)
        dumps, loads = json.dumps, json.loads
        while True:
            for sock, _ in poller.poll():
                if sock is self._router:
                    identity, body = self._router.recv_multipart()
                    loads(body)
                    self._router.send_multipart([identity, b"ok"])
                    continue
                body = self._rep.recv()
                if body == _STOP:
                    self._rep.send(b"")
                    return
                message = loads(body)
                if "oslo.message" in message:
                    inner = loads(message["oslo.message"])
                    reply = dumps({"result": inner["args"]["value"], "_msg_id": inner["_msg_id"]})
                    self._rep.send(dumps({"oslo.version": "2.0", "oslo.message": reply}).encode())
                else:
                    self._rep.send(
                        dumps({"result": message["args"]["value"], "msg_id": message["msg_id"]})
                        .encode()
                    )  # fmt: skip

    def _timed(self, count: int, encode: Any, decode: Any) -> list[float]:
        send, recv, clock = self._req.send, self._req.recv, time.perf_counter
        latencies = []
        for i in range(count):
            started = clock()
            send(encode(i))
            decode(recv())
            latencies.append(clock() - started)
        return latencies

    def _casts(self, count: int, encode: Any) -> float:
        send, recv = self._dealer.send, self._dealer.recv
        started = time.perf_counter()
        for i in range(count):
            send(encode(i))
        for _ in range(count):
            recv()
        return time.perf_counter() - started
