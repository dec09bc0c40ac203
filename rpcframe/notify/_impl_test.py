"""Compatibility only: ``oslo_messaging.notify._impl_test`` over :mod:`rpcframe.notify.drivers`.

The ``test`` notifier driver and the list it fills, under the names unit
tests written for oslo.messaging use (``NOTIFICATIONS``, ``reset()``).
:func:`rpcframe.notify.testing.record_notifications` is the rpcframe way.
"""

from rpcframe.notify.drivers import NOTIFICATIONS, TestDriver, reset

__all__ = ["NOTIFICATIONS", "TestDriver", "reset"]
