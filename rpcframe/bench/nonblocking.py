"""Calls that do not block, measured: calls in flight from one thread, and streams.

:func:`calls_in_flight` makes echo calls with ``client.call_async`` from the
calling thread alone, a batch at a time: it sends every call of a batch
(1,000 by default), then collects their results, and times each call from
just before its send to the moment its result was available, as stamped by a
done callback in the thread that read the reply (not when this thread got
round to collecting it, which would give every call of a batch the batch's
time). :func:`streamed_chunks` consumes one stream of the bench server's
``chunks`` generator with ``client.stream``.

Both take a client and nothing else of the bench, so that the workloads of
:mod:`rpcframe.bench.workloads` and the eventlet sides of
:mod:`rpcframe.bench.patched` measure with the same code.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from concurrent import futures
from typing import Any

__all__ = ["batches", "calls_in_flight", "stream_timeout", "streamed_chunks"]


def batches(count: int, in_flight: int) -> int:
    """How many full batches of ``in_flight`` calls make at least ``count`` calls (1 at least)."""
    return max(1, math.ceil(count / in_flight))


class _Stamps:
    """When each call of a batch completed, stamped by its done callback."""

    def __init__(self, size: int) -> None:
        self.at = [0.0] * size
        self._left = size
        self._lock = threading.Lock()
        self.all_in = threading.Event()
        if not size:
            self.all_in.set()

    def stamp(self, index: int, handle: futures.Future[Any]) -> None:
        self.at[index] = time.perf_counter()
        with self._lock:
            self._left -= 1
            if not self._left:
                self.all_in.set()


def calls_in_flight(
    client: Any, payload: str, batch_count: int, in_flight: int, timeout: float
) -> tuple[float, list[float]]:
    """``batch_count`` batches of ``in_flight`` echo calls, each batch all sent, then collected.

    Returns the seconds the batches took (from a batch's first send to its
    last result) and each call's latency in seconds. Raises what a call
    raised; RuntimeError if a done callback had not run ``timeout`` seconds
    after the last result (which a Future only runs after waking its waiters).
    """
    clock, call_async = time.perf_counter, client.call_async
    seconds = 0.0
    latencies: list[float] = []
    for _ in range(batch_count):
        stamps = _Stamps(in_flight)
        sent = [0.0] * in_flight
        handles = []
        started = clock()
        for i in range(in_flight):
            sent[i] = clock()
            handle = call_async({}, "echo", value=payload)
            handle.add_done_callback(functools.partial(stamps.stamp, i))
            handles.append(handle)
        for handle in handles:
            handle.result(timeout)
        if not stamps.all_in.wait(timeout):
            raise RuntimeError("the done callbacks of calls in flight did not all run")
        seconds += clock() - started
        latencies.extend(done - began for began, done in zip(sent, stamps.at, strict=True))
    return seconds, latencies


def streamed_chunks(client: Any, count: int, size: int, window: int, timeout: float) -> float:
    """Consume a stream of ``count`` chunks of ``size`` bytes; the seconds it took.

    ``window`` is the stream's credit window; ``timeout`` bounds the whole
    stream. Raises RuntimeError if the stream ended short.
    """
    bounded = client.prepare(timeout=timeout)
    started = time.perf_counter()
    received = 0
    with bounded.stream({}, "chunks", window=window, count=count, size=size) as chunks:
        for _ in chunks:
            received += 1
    seconds = time.perf_counter() - started
    if received != count:
        raise RuntimeError(f"the stream ended after {received} of {count} chunks")
    return seconds


def stream_timeout(per_call: float, count: int) -> float:
    """A whole stream's bound: a call's timeout for every 1,000 chunks, one at least."""
    return per_call * max(1.0, count / 1000)
