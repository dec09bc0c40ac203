"""Compatibility only: ``oslo_messaging._drivers.impl_fake`` over :mod:`rpcframe.drivers.fake`.

Tests isolate the fake broker by replacing ``FakeExchangeManager._exchanges``
with an empty dict; rpcframe's fake keeps its brokers in that very mapping,
so they are isolated the same way.
"""

from rpcframe.drivers.fake import FakeDriver, FakeExchangeManager

__all__ = ["FakeDriver", "FakeExchangeManager"]
