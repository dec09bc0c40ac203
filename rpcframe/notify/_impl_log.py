"""Compatibility only: ``oslo_messaging.notify._impl_log`` over :mod:`rpcframe.notify.drivers`."""

from rpcframe.notify.drivers import LogDriver

__all__ = ["LogDriver"]
