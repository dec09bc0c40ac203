"""Compatibility only: oslo.messaging's private ``_metrics`` package.

Unit tests written for oslo.messaging patch ``oslo_messaging._metrics``;
through :mod:`rpcframe.dropin` they reach these names, which are
:mod:`rpcframe.metrics` under oslo's spelling. New code uses
:mod:`rpcframe.metrics`.
"""

from rpcframe._metrics.client import MetricsCollectorClient, get_collector, measure_metrics

__all__ = ["MetricsCollectorClient", "get_collector", "measure_metrics"]
