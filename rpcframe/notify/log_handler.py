"""LoggingErrorNotificationHandler: error log records as ``error_notification``.

oslo.log's ``publish_errors`` option installs it as ``PublishErrorsHandler``.
Each record it handles is sent at ERROR priority, publisher
``error.publisher``, event type ``error_notification``, payload
``{"error": <the formatted message>}``. When ``log`` is among the
configured notification drivers it sends nothing: the log driver would log
the notification, which would come back here.

Like :class:`~rpcframe.notify.logger.LoggingNotificationHandler`, and as
oslo.messaging's, it uses ``conf=``, else the class attribute ``CONF``: the
global ``cfg.CONF`` unless a subclass sets another.
"""

from __future__ import annotations

import logging
from typing import Any

from oslo_config import cfg

from rpcframe.notify import notifier as notify_notifier
from rpcframe.notify.logger import ReentryGuard

__all__ = ["LoggingErrorNotificationHandler", "PublishErrorsHandler"]


class LoggingErrorNotificationHandler(logging.Handler):
    """Sends the log records it handles as error notifications.

    :param conf: the ConfigOpts whose notification transport and drivers to
        use (default: the class's ``CONF``, oslo.config's global ``cfg.CONF``).
    :param url: the notification transport URL (default: the configured one).
    """

    CONF: cfg.ConfigOpts = cfg.CONF

    def __init__(
        self, *args: Any, conf: cfg.ConfigOpts | None = None, url: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        conf = conf if conf is not None else self.CONF
        self._transport = notify_notifier.get_notification_transport(conf, url)
        self._notifier = notify_notifier.Notifier(self._transport, publisher_id="error.publisher")
        self._guard = ReentryGuard()

    def emit(self, record: logging.LogRecord) -> None:
        if "log" in self._transport.conf.oslo_messaging_notifications.driver:
            return
        if self._guard.active:
            return
        self._guard.active = True
        try:
            self._notifier.error({}, "error_notification", {"error": record.getMessage()})
        except Exception:  # noqa: BLE001 - a log handler must not raise into the code that logs
            self.handleError(record)
        finally:
            self._guard.active = False

    def close(self) -> None:
        try:
            self._transport.cleanup()
        finally:
            super().close()


PublishErrorsHandler = LoggingErrorNotificationHandler
