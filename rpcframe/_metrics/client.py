"""Compatibility only: ``oslo_messaging._metrics.client`` names over :mod:`rpcframe.metrics`."""

from rpcframe.metrics import MetricsCollectorClient, get_collector
from rpcframe.metrics import measure as measure_metrics
from rpcframe.metrics import metrics_opts as oslo_messaging_metrics

__all__ = [
    "METRICS_COLLECTOR",
    "MetricsCollectorClient",
    "get_collector",
    "measure_metrics",
    "oslo_messaging_metrics",
]

#: oslo's name for the process's collector; rpcframe keeps its own in
#: :mod:`rpcframe.metrics`, and tests that reset this one lose nothing.
METRICS_COLLECTOR = None
