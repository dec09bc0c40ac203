"""The in-process reference of ``rpcframe bench --compare`` on ``fake://``.

:class:`BareInProcess` measures what no in-memory RPC between two threads can
beat: a request handed to a second thread through a ``queue.SimpleQueue``,
JSON-decoded there and answered through another, the answer JSON-decoded by
the caller (one encode and one decode each way, as an honest codec needs).
Again doing the envelope work oslo.messaging's wire format asks for (the
message JSON inside a JSON envelope, both ways), and for casts: encoded,
handed over and decoded by the other thread, end to end.

Measured in rounds alternating with rpcframe's sequential calls and
confirmed casts on ``fake://``, as :mod:`rpcframe.bench.raw` is on RabbitMQ,
so the ratios compare the same moments of a noisy machine.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

__all__ = ["BareInProcess", "JsonWorkloads"]

_STOP = b""


class JsonWorkloads:
    """The four reference workloads, over a subclass's ``_timed`` and ``_casts``.

    ``_timed(count, encode, decode)`` times ``count`` round trips of
    ``encode(i)``, decoding each answer; ``_casts(count, encode)`` times
    ``count`` casts and their acknowledgements.
    """

    _payload: str

    def _timed(self, count: int, encode: Any, decode: Any) -> list[float]:
        raise NotImplementedError

    def _casts(self, count: int, encode: Any) -> float:
        raise NotImplementedError

    def round_trips(self, count: int) -> list[float]:
        payload = self._payload

        def encode(i: int) -> bytes:
            return json.dumps({"method": "echo", "args": {"value": payload}, "msg_id": i}).encode()

        return self._timed(count, encode, json.loads)

    def protocol_round_trips(self, count: int) -> list[float]:
        payload = self._payload

        def encode(i: int) -> bytes:
            inner = json.dumps({"method": "echo", "args": {"value": payload}, "_msg_id": str(i)})
            return json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()

        def decode(body: bytes) -> Any:
            return json.loads(json.loads(body)["oslo.message"])

        return self._timed(count, encode, decode)

    def confirmed_publishes(self, count: int) -> float:
        payload = self._payload
        return self._casts(
            count, lambda i: json.dumps({"method": "echo", "args": {"value": payload}}).encode()
        )

    def protocol_confirmed_casts(self, count: int) -> float:
        payload = self._payload

        def encode(i: int) -> bytes:
            inner = json.dumps({"method": "echo", "args": {"value": payload}})
            return json.dumps({"oslo.version": "2.0", "oslo.message": inner}).encode()

        return self._casts(count, encode)


class BareInProcess(JsonWorkloads):
    """Two threads, two SimpleQueues, JSON each way; a context manager."""

    def __init__(self, payload_size: int, warmup: int) -> None:
        self._payload = "x" * payload_size
        self._warmup = warmup
        self._requests: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._replies: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="bench-bare-server", daemon=True)

    def __enter__(self) -> BareInProcess:
        self._thread.start()
        self.round_trips(self._warmup)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._requests.put(_STOP)
        self._thread.join(10)

    def _serve(self) -> None:
        get, put, dumps, loads = self._requests.get, self._replies.put, json.dumps, json.loads
        while True:
            body = get()
            if body is _STOP:
                return
            message = loads(body)
            if "oslo.message" in message:  # enveloped: the message is JSON inside
                inner = loads(message["oslo.message"])
                if "_msg_id" not in inner:
                    put(b"cast")
                    continue
                reply = dumps({"result": inner["args"]["value"], "_msg_id": inner["_msg_id"]})
                put(dumps({"oslo.version": "2.0", "oslo.message": reply}).encode())
            elif "msg_id" in message:
                put(
                    dumps(
                        {"result": message["args"]["value"], "msg_id": message["msg_id"]}
                    ).encode()
                )
            else:
                put(b"cast")

    def _timed(self, count: int, encode: Any, decode: Any) -> list[float]:
        put, get, clock = self._requests.put, self._replies.get, time.perf_counter
        latencies = []
        for i in range(count):
            started = clock()
            put(encode(i))
            decode(get())
            latencies.append(clock() - started)
        return latencies

    def _casts(self, count: int, encode: Any) -> float:
        put, get = self._requests.put, self._replies.get
        started = time.perf_counter()
        for i in range(count):
            put(encode(i))
        for _ in range(count):
            get()
        return time.perf_counter() - started
