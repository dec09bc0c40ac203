"""LoggingNotificationHandler: a logging handler that sends records as notifications.

::

    handler = rpcframe.LoggingNotificationHandler(
        "rabbit://user:pass@broker:5672/", publisher_id="api.host1", driver="messagingv2"
    )
    handler.setLevel(logging.ERROR)
    logging.getLogger().addHandler(handler)

Each record becomes a ``logrecord`` notification at the record's level
(``error``, ``warning``...; levels without a notifier method are skipped)
whose payload describes the record.

A logging configuration file names the handler and its arguments, and cannot
pass a ConfigOpts: so, as in oslo.messaging, the handler reads the global
``cfg.CONF`` (the one the service parsed) unless given ``conf=``, or a
subclass sets the class attribute ``CONF``. This and
:class:`~rpcframe.notify.log_handler.LoggingErrorNotificationHandler` are
the only places rpcframe reads ``cfg.CONF`` on its own: oslo's entry points
without a ``conf`` parameter.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from oslo_config import cfg

from rpcframe.notify import notifier as notify_notifier

__all__ = ["LoggingNotificationHandler"]

_FORMATTER = logging.Formatter()


class ReentryGuard(threading.local):
    """Per-thread flag: a handler must not notify about its own notifying.

    Sending a notification may log (a driver failure, the log driver); that
    record would come back to the handler, and so on forever.
    """

    active = False


class LoggingNotificationHandler(logging.Handler):
    """Sends each log record it handles as a notification.

    :param url: the notification transport URL.
    :param publisher_id: the notifications' publisher id.
    :param driver: the notifier driver (default: the configured ones).
    :param topic: a topic or a list of topics (default: the configured ones).
    :param serializer: a serializer *class*, instantiated here (as oslo does).
    :param conf: the ConfigOpts to use (default: the class's ``CONF``,
        oslo.config's global ``cfg.CONF``).
    """

    CONF: cfg.ConfigOpts = cfg.CONF

    def __init__(
        self,
        url: str | None,
        publisher_id: str | None = None,
        driver: str | None = None,
        topic: str | list[str] | None = None,
        serializer: Any = None,
        *,
        conf: cfg.ConfigOpts | None = None,
    ) -> None:
        super().__init__()
        conf = conf if conf is not None else self.CONF
        self.transport = notify_notifier.get_notification_transport(conf, url)
        topics = topic if isinstance(topic, list) or topic is None else [topic]
        self.notifier = notify_notifier.Notifier(
            self.transport,
            publisher_id,
            driver,
            serializer() if serializer else None,
            topics=topics,
        )
        self._guard = ReentryGuard()

    def emit(self, record: logging.LogRecord) -> None:
        method = getattr(self.notifier, record.levelname.lower(), None)
        if method is None or self._guard.active:
            return
        self._guard.active = True
        try:
            method(None, "logrecord", self._payload(record))
        except Exception:  # noqa: BLE001 - a log handler must not raise into the code that logs
            self.handleError(record)
        finally:
            self._guard.active = False

    def _payload(self, record: logging.LogRecord) -> dict[str, Any]:
        exc_text = None
        if record.exc_info:
            # A traceback object cannot travel; its text can.
            exc_text = (self.formatter or _FORMATTER).formatException(record.exc_info)
        return {
            "name": record.name,
            "levelno": record.levelno,
            "levelname": record.levelname,
            "exc_info": exc_text,
            "pathname": record.pathname,
            "lineno": record.lineno,
            "msg": record.getMessage(),
            "funcName": record.funcName,
            "thread": record.thread,
            "processName": record.processName,
            "process": record.process,
            "extra": getattr(record, "extra", None),
        }

    def close(self) -> None:
        try:
            self.transport.cleanup()
        finally:
            super().close()
