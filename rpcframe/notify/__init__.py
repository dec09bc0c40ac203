"""Notifications: notifiers that publish events, listeners that consume them.

The names oslo.messaging exports from ``oslo_messaging.notify``, plus what
rpcframe adds: endpoint controls (:class:`Requeue`, :class:`Drop`,
:class:`HaltListener`), :class:`ValidationError` for schemas
(:mod:`rpcframe.notify.schemas`), publish hooks (:mod:`rpcframe.notify.hooks`)
and a recorder for tests (:mod:`rpcframe.notify.testing`).
"""

from rpcframe.exceptions import (
    Drop,
    HaltListener,
    InvalidNotification,
    Requeue,
    ValidationError,
)
from rpcframe.identity import Sender
from rpcframe.notify.dispatcher import NotificationResult
from rpcframe.notify.filter import NotificationFilter
from rpcframe.notify.listener import get_batch_notification_listener, get_notification_listener
from rpcframe.notify.log_handler import LoggingErrorNotificationHandler, PublishErrorsHandler
from rpcframe.notify.logger import LoggingNotificationHandler
from rpcframe.notify.notifier import Notifier, get_notification_transport

# oslo.messaging's private driver modules, which tests reach as attributes
# (oslo_messaging.notify._impl_test.NOTIFICATIONS) without importing them.
from rpcframe.notify import _impl_log, _impl_test  # noqa: F401  isort: skip

__all__ = [
    "Drop",
    "HaltListener",
    "InvalidNotification",
    "LoggingErrorNotificationHandler",
    "LoggingNotificationHandler",
    "NotificationFilter",
    "NotificationResult",
    "Notifier",
    "PublishErrorsHandler",
    "Requeue",
    "Sender",
    "ValidationError",
    "get_batch_notification_listener",
    "get_notification_listener",
    "get_notification_transport",
]
