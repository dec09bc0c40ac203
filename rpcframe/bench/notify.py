"""Notification throughput: what ``rpcframe bench`` reports for notifications.

:func:`measure` publishes notifications through a ``messagingv2`` Notifier
and counts them arriving at a listener on the same transport, in this
process, after a warm-up. It is a building block for the benchmark command,
not a test: it asserts nothing and only reports.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from oslo_config import cfg

import rpcframe
from rpcframe.bench.report import percentile

__all__ = ["measure"]


class _Counter:
    """A listener endpoint that counts receipts and notes when the last one came."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.received = 0
        self.target = 0
        self.last = 0.0

    def expect(self, target: int) -> None:
        with self._cond:
            self.received = 0
            self.target = target

    def info(self, ctxt: Any, publisher_id: Any, event_type: str, payload: Any, meta: Any) -> None:
        with self._cond:
            self.received += 1
            if self.received == self.target:
                self.last = time.perf_counter()
                self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.received >= self.target, timeout)


def measure(
    transport_url: str = "fake://",
    count: int = 10_000,
    *,
    payload_bytes: int = 100,
    warmup: int = 500,
    timeout: float = 120.0,
    conf: cfg.ConfigOpts | None = None,
    topic: str | None = None,
) -> dict[str, Any]:
    """Send ``count`` notifications and count them in; return the figures.

    :param transport_url: the transport to measure (a fresh topic is used).
    :param count: notifications in the measured run (after ``warmup`` more).
    :param payload_bytes: size of the payload's one string field.
    :param timeout: seconds to wait for every notification to arrive.
    :param conf: ConfigOpts for the transport (default: defaults only).
    :param topic: the topic to use (default: a fresh one); its ``.info``
        queue stays on a broker afterwards, for the caller to remove.

    Returns a dict:

    * ``driver``: the URL scheme; ``count``, ``payload_bytes``: as given.
    * ``received``: how many the listener counted (``count`` unless some
      were lost or late); ``complete``: whether all arrived in time.
    * ``publish_per_s``: notifications the notifier sent per second (each
      ``info()`` returns once the transport owns the message).
    * ``end_to_end_per_s``: ``received`` divided by the time from the first
      send to the last receipt.
    * ``publish_p50_ms``, ``publish_p99_ms``: latency of one ``info()`` call.
    * ``elapsed_s``: the measured run, first send to last receipt.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    if conf is None:
        conf = cfg.ConfigOpts()
        conf([], default_config_files=[], default_config_dirs=[])
    topic = topic or f"bench_notify_{uuid.uuid4().hex[:8]}"
    counter = _Counter()
    payload = {"data": "x" * payload_bytes}
    with rpcframe.get_notification_transport(conf, transport_url) as transport:
        listener = rpcframe.get_notification_listener(
            transport, [rpcframe.Target(topic=topic)], [counter]
        )
        listener.start()
        try:
            notifier = rpcframe.Notifier(
                transport, "rpcframe.bench", driver="messagingv2", topics=[topic]
            )
            if warmup > 0:
                counter.expect(warmup)
                for _ in range(warmup):
                    notifier.info({}, "bench.warmup", payload)
                counter.wait(timeout)
            counter.expect(count)
            latencies = []
            clock = time.perf_counter
            started = clock()
            for _ in range(count):
                before = clock()
                notifier.info({}, "bench.event", payload)
                latencies.append(clock() - before)
            sent = clock() - started
            complete = counter.wait(timeout)
            finished = counter.last if complete else clock()
        finally:
            listener.stop()
            listener.wait()
    latencies.sort()
    elapsed = finished - started
    return {
        "driver": transport_url.split(":", 1)[0],
        "count": count,
        "payload_bytes": payload_bytes,
        "received": counter.received,
        "complete": complete,
        "publish_per_s": count / sent if sent > 0 else float("inf"),
        "end_to_end_per_s": counter.received / elapsed if elapsed > 0 else float("inf"),
        "publish_p50_ms": percentile(latencies, 0.50) * 1000,
        "publish_p99_ms": percentile(latencies, 0.99) * 1000,
        "elapsed_s": elapsed,
    }
