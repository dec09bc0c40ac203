"""RPC metrics for oslo.metrics: counts and durations of calls and casts.

With ``[oslo_messaging_metrics] metrics_enabled``, every call and cast a
client makes is counted and timed, and sent to the oslo.metrics collector
over its Unix datagram socket (``metrics_socket_file``), in the format
oslo.messaging uses: so an oslo.metrics deployment that graphs
oslo.messaging services graphs rpcframe services the same way. The metrics
are oslo.messaging's ``rpc_client_invocation_start_total``,
``rpc_client_invocation_end_total``, ``rpc_client_processing_seconds`` and
``rpc_client_exception_total``, labelled with the target, method, call type
and timeout (and the exception's class name), plus ``process``
(``metrics_process_name``).

Sending never holds a caller up: metrics go into a bounded queue
(``metrics_buffer_size``; when it is full a metric is dropped with a
warning) that one daemon thread empties; the thread ends after
``metrics_thread_stop_timeout`` idle seconds and is started again by the
next metric. With metrics disabled (the default) nothing here runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from oslo_config import cfg

from rpcframe import confread

__all__ = ["MetricsCollectorClient", "get_collector", "measure"]

LOG = logging.getLogger(__name__)

GROUP = "oslo_messaging_metrics"
MODULE = "oslo_messaging"  # what oslo.metrics files these metrics under

metrics_opts = [
    cfg.BoolOpt("metrics_enabled", default=False, help="Send RPC metrics to oslo.metrics."),
    cfg.IntOpt(
        "metrics_buffer_size",
        default=1000,
        help="How many metrics may wait to be sent; more are dropped.",
    ),
    cfg.StrOpt(
        "metrics_socket_file",
        default="/var/tmp/metrics_collector.sock",
        help="The Unix domain socket oslo.metrics listens on.",
    ),
    cfg.StrOpt(
        "metrics_process_name",
        default="",
        help="Process name put on every metric, to tell the processes of a host apart.",
    ),
    cfg.IntOpt(
        "metrics_thread_stop_timeout",
        default=10,
        help="The sending thread ends after this many seconds without a metric "
        "to send (so it never holds a process up when it exits); the next "
        "metric starts it again.",
    ),
]


class MetricsCollectorClient:
    """Queues metrics and sends them to oslo.metrics from one thread."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        conf.register_opts(metrics_opts, group=GROUP)
        self.conf = getattr(conf, GROUP)
        self.unix_socket = self.conf.metrics_socket_file
        self.tx_queue: queue.Queue[str] = queue.Queue(self.conf.metrics_buffer_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put_into_txqueue(self, metrics_name: str, action: dict[str, Any], **labels: Any) -> None:
        """Queue one metric; ``action`` is ``{"action": "inc"|"observe", "value": ...}``."""
        labels["process"] = self.conf.metrics_process_name
        metric = json.dumps(
            {"module": MODULE, "name": metrics_name, "action": action, "labels": labels}
        )
        try:
            self.tx_queue.put_nowait(metric)
        except queue.Full:
            LOG.warning(
                "The metrics queue is full (%d); dropping %s", self.tx_queue.maxsize, metrics_name
            )
        self._ensure_sender()

    def _ensure_sender(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._send_loop, name="rpcframe-metrics", daemon=True
                )
                self._thread.start()

    def _send_loop(self) -> None:
        idle = self.conf.metrics_thread_stop_timeout
        while True:
            try:
                metric = self.tx_queue.get(timeout=idle)
            except queue.Empty:
                return
            try:
                self.send_metric(metric)
            except OSError as exc:
                LOG.debug("Could not send a metric to %s: %s", self.unix_socket, exc)

    def send_metric(self, metric: str) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(self.unix_socket)
            sock.send(metric.encode())

    # -- what clients and servers report -----------------------------------------

    def put_rpc_client_metrics_to_txqueue(
        self,
        metric_name: str,
        action: dict[str, Any],
        target: Any,
        method: str,
        call_type: str,
        timeout: float | None,
        exception: str | None = None,
    ) -> None:
        labels = {
            "call_type": call_type,
            "exchange": target.exchange,
            "topic": target.topic,
            "namespace": target.namespace,
            "version": target.version,
            "server": target.server,
            "fanout": target.fanout,
            "method": method,
            "timeout": timeout,
        }
        if exception:
            labels["exception"] = exception
        self.put_into_txqueue(metric_name, action, **labels)

    def put_rpc_server_metrics_to_txqueue(
        self,
        metric_name: str,
        action: dict[str, Any],
        target: Any,
        endpoint: str,
        ns: str | None,
        ver: str | None,
        method: str,
        exception: str | None = None,
    ) -> None:
        labels = {
            "endpoint": endpoint,
            "namespace": ns,
            "version": ver,
            "method": method,
            "exchange": getattr(target, "exchange", None),
            "topic": getattr(target, "topic", None),
            "server": getattr(target, "server", None),
        }
        if exception:
            labels["exception"] = exception
        self.put_into_txqueue(metric_name, action, **labels)


_INC = {"action": "inc", "value": None}

_collectors: dict[tuple[Any, ...], MetricsCollectorClient] = {}
_collector_lock = threading.Lock()


def get_collector(conf: cfg.ConfigOpts) -> MetricsCollectorClient:
    """The collector client for ``conf``'s metrics options, made on first use.

    One per process and set of options (usually exactly one).
    """
    conf.register_opts(metrics_opts, group=GROUP)
    section = getattr(conf, GROUP)
    key = tuple(section[opt.dest] for opt in metrics_opts)
    with _collector_lock:
        collector = _collectors.get(key)
        if collector is None:
            collector = _collectors[key] = MetricsCollectorClient(conf)
        return collector


def _enabled(conf: Any) -> bool:
    if not isinstance(conf, cfg.ConfigOpts):  # a test's mock transport has no options
        return False
    try:
        return bool(confread.value(conf, "metrics_enabled", GROUP))
    except cfg.NoSuchOptError:  # registered with the core options; not here yet
        conf.register_opts(metrics_opts, group=GROUP)
        return bool(confread.value(conf, "metrics_enabled", GROUP))


_UNMEASURED = contextlib.nullcontext()


def measure(
    conf: Any, target: Any, method: str, call_type: str
) -> contextlib.AbstractContextManager[None]:
    """Count and time one client call or cast (when metrics are enabled)."""
    if not _enabled(conf):
        return _UNMEASURED  # nothing to do: no generator to run per call
    return _measured(conf, target, method, call_type)


@contextlib.contextmanager
def _measured(conf: Any, target: Any, method: str, call_type: str) -> Iterator[None]:
    collector = get_collector(conf)
    report = collector.put_rpc_client_metrics_to_txqueue
    report("rpc_client_invocation_start_total", _INC, target, method, call_type, None)
    started = time.monotonic()
    try:
        yield
    except Exception as exc:
        report(
            "rpc_client_exception_total",
            _INC,
            target,
            method,
            call_type,
            None,
            type(exc).__name__,
        )
        raise
    elapsed = {"action": "observe", "value": time.monotonic() - started}
    report("rpc_client_processing_seconds", elapsed, target, method, call_type, None)
    report("rpc_client_invocation_end_total", _INC, target, method, call_type, None)
