"""Notifier drivers: where a Notifier's notifications go.

A notifier driver is a :class:`Driver` subclass named under the
``rpcframe.notify.drivers`` entry point group. A Notifier loads the drivers
named by its ``driver`` argument or by ``[oslo_messaging_notifications]
driver`` and hands each notification to every one of them, built as
``DriverClass(conf, topics=..., transport=...)`` (oslo.messaging's
convention, so drivers written for it port by changing their base class).

This module has the small ones:

* ``log`` (:class:`LogDriver`): writes each notification to Python logging.
* ``test`` (:class:`TestDriver`): keeps them in :data:`NOTIFICATIONS`.
* ``noop`` (:class:`NoOpDriver`): drops them; ``Notifier.is_enabled()`` is
  false when it is the only driver.

``messaging``/``messagingv2`` live in :mod:`rpcframe.notify.messaging` and
``routing`` in :mod:`rpcframe.notify.routing`.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import redaction
from rpcframe.serializer import to_primitive

__all__ = ["NOTIFICATIONS", "Driver", "LogDriver", "NoOpDriver", "TestDriver", "reset"]

NAMESPACE = "rpcframe.notify.drivers"

#: What a driver is given: the sanitised context, and the message.
Context = dict[str, Any]
Message = Mapping[str, Any]


class Driver(abc.ABC):
    """Sends the notifications a Notifier gives it.

    :param conf: the transport's ConfigOpts.
    :param topics: the topics the Notifier was built with.
    :param transport: the Notifier's transport.
    """

    def __init__(self, conf: cfg.ConfigOpts, topics: Sequence[str], transport: Any) -> None:
        self.conf = conf
        self.topics = list(topics or ())
        self.transport = transport

    @abc.abstractmethod
    def notify(
        self, ctxt: dict[str, Any], message: Mapping[str, Any], priority: str, retry: Any
    ) -> None:
        """Send one notification.

        :param ctxt: the sanitised context, a dict.
        :param message: ``message_id``, ``publisher_id``, ``event_type``,
            ``priority`` (upper case), ``payload`` and ``timestamp``.
        :param priority: the priority, upper case.
        :param retry: reconnection attempts (None or -1 without limit, 0
            none, N at most N), for drivers that send over a transport.

        May block until the notification is handed over; raises when it
        could not be (the Notifier logs the error and tells its hooks).
        """


class LogDriver(Driver):
    """Writes notifications to the ``oslo.messaging.notification.<event_type>`` logger.

    The logger name is oslo.messaging's, so existing logging configuration
    keeps applying. The record is the message as JSON, with the values of
    secret-looking keys replaced by ``***``, logged through the logger's
    method named after the priority (``logger.info(...)``; ``warn`` as
    ``warning``). ``AUDIT`` is logged at INFO by a logger without an
    ``audit`` method; ``SAMPLE`` notifications are not logged (they are
    high-frequency measurements, not events) unless the logger has a
    ``sample`` method.
    """

    LOGGER_BASE = "oslo.messaging.notification"

    #: The standard levels of the logger methods used, to skip encoding a
    #: message the logger would drop.
    LEVELS = {
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "critical": logging.CRITICAL,
    }

    def notify(self, ctxt: Any, message: Mapping[str, Any], priority: str, retry: Any) -> None:
        name = priority.lower()
        if name == "warn":
            name = "warning"
        logger = logging.getLogger(f"{self.LOGGER_BASE}.{message['event_type']}")
        method = getattr(logger, name, None)
        if method is None and name == "audit":
            name, method = "info", logger.info
        if not callable(method):
            return
        level = self.LEVELS.get(name)
        if level is not None and not logger.isEnabledFor(level):
            return
        method(json.dumps(to_primitive(redaction.mask_secrets(message))))


#: What the ``test`` driver received: ``(ctxt, message, priority, retry)`` tuples.
NOTIFICATIONS: list[tuple[Context, Message, str, Any]] = []
_notifications_lock = threading.Lock()


def reset() -> None:
    """Forget what the ``test`` driver received (clears the list in place)."""
    with _notifications_lock:
        NOTIFICATIONS.clear()


class TestDriver(Driver):
    """Keeps every notification in :data:`NOTIFICATIONS`, for tests.

    :mod:`rpcframe.notify.testing` offers a recorder that works on any
    driver and is usually more convenient.
    """

    __test__ = False  # not a pytest test class, despite its name

    def notify(
        self, ctxt: dict[str, Any], message: Mapping[str, Any], priority: str, retry: Any
    ) -> None:
        with _notifications_lock:
            NOTIFICATIONS.append((ctxt, message, priority, retry))


class NoOpDriver(Driver):
    """Drops every notification."""

    def notify(
        self, ctxt: dict[str, Any], message: Mapping[str, Any], priority: str, retry: Any
    ) -> None:
        return None
