"""Notifier: sends notifications through the configured notifier drivers.

::

    transport = rpcframe.get_notification_transport(conf)
    notifier = rpcframe.Notifier(transport, publisher_id="compute.host1",
                                 driver="messagingv2", topics=["notifications"])
    notifier.info(ctxt, "compute.instance.create.end", {"instance_id": "i-1"})

Each call builds one message in oslo.messaging's format (``message_id``,
``publisher_id``, ``event_type``, ``priority`` upper case, ``payload``,
``timestamp``) and hands it, with the sanitised context (see
:mod:`rpcframe.redaction`), to every driver. Options come from
``[oslo_messaging_notifications]`` of the transport's ConfigOpts: ``driver``,
``topics``, ``retry`` (and ``routing_config`` for the routing driver).

What the caller gets wrong raises at once and sends nothing:
:class:`~rpcframe.exceptions.InvalidNotification` for an empty event type, an
unknown priority or a payload JSON cannot hold, its subclass
:class:`~rpcframe.exceptions.ValidationError` for a payload that does not
match the event type's schema (:mod:`rpcframe.notify.schemas`). What the
transport gets wrong is logged and reported to the ``publish_failed`` hook,
not raised, as in oslo.messaging: notifications must not break the service
that sends them.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import logging
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from stevedore import named

from rpcframe import exceptions, options, redaction, wire
from rpcframe import serializer as msg_serializer
from rpcframe import transport as msg_transport
from rpcframe.notify import drivers, hooks
from rpcframe.notify import schemas as notify_schemas
from rpcframe.notify.drivers import Driver
from rpcframe.transport import get_notification_transport
from rpcframe.unset import UNSET, Unset

__all__ = ["Driver", "Notifier", "get_notification_transport"]

#: oslo.messaging's name for this logger, which services' tests patch.
_LOG = logging.getLogger(__name__)

_PRIORITIES = frozenset(p.upper() for p in wire.PRIORITIES) | {"WARNING"}


def _timestamp() -> str:
    """UTC now as oslo.messaging writes it: ``2024-05-01 12:00:00.123456``.

    Where the process uses oslo.utils' clock it is read from there
    (``timeutils.utcnow``), so that a test that freezes that clock
    (``timeutils.set_time_override``, or a mock of ``utcnow``) sees its time
    in the notifications it records, as with oslo.messaging.
    """
    timeutils = sys.modules.get("oslo_utils.timeutils")
    if timeutils is not None:
        return str(timeutils.utcnow())
    return str(datetime.datetime.now(datetime.UTC).replace(tzinfo=None))


def _load_drivers(
    conf: Any, names: Sequence[str], topics: list[str], transport: Any
) -> tuple[tuple[str, Driver], ...]:
    if not names:
        return ()

    def failed(manager: Any, entry_point: Any, exc: BaseException) -> None:
        raise exceptions.ConfigurationError(
            f"cannot load the {entry_point.name!r} notification driver: {exc}"
        ) from exc

    manager = named.NamedExtensionManager(
        drivers.NAMESPACE,
        names=list(names),
        invoke_on_load=True,
        invoke_args=(conf,),
        invoke_kwds={"topics": topics, "transport": transport},
        name_order=True,
        on_load_failure_callback=failed,
    )
    loaded: tuple[tuple[str, Driver], ...] = tuple(
        (ext.name, cast(Driver, ext.obj)) for ext in manager
    )
    missing = [name for name in names if name not in {n for n, _ in loaded}]
    if missing:
        from importlib.metadata import entry_points

        known = sorted(ep.name for ep in entry_points(group=drivers.NAMESPACE))
        raise exceptions.ConfigurationError(
            f"unknown notification driver(s) {', '.join(map(repr, missing))}; "
            f"known: {', '.join(known)}"
        )
    return loaded


class Notifier:
    """Sends notifications; oslo.messaging's Notifier, with schemas and hooks.

    :param transport: from :func:`~rpcframe.get_notification_transport`.
    :param publisher_id: who publishes, e.g. ``"compute.host1"``.
    :param driver: one driver name; default ``[oslo_messaging_notifications]
        driver`` (several may be configured). No driver: nothing is sent.
    :param serializer: converts the payload and the context.
    :param retry: reconnection attempts while sending (None: the ``retry``
        option; -1 without limit, 0 none, N at most N).
    :param topics: default ``[oslo_messaging_notifications] topics``.
    :param schemas: the :class:`~rpcframe.notify.schemas.SchemaRegistry` to
        validate against (default: the process-wide one).

    Loading drivers is the expensive part; :meth:`prepare` makes a notifier
    with another publisher id that shares them. Safe to share between threads.
    """

    def __init__(
        self,
        transport: msg_transport.Transport,
        publisher_id: str | None = None,
        driver: str | None = None,
        serializer: msg_serializer.Serializer | None = None,
        retry: int | None = None,
        topics: Sequence[str] | None = None,
        *,
        schemas: notify_schemas.SchemaRegistry | None = None,
    ) -> None:
        conf = transport.conf
        options.register_notifications(conf)
        section = conf.oslo_messaging_notifications
        if not isinstance(transport, msg_transport.NotificationTransport) and not getattr(
            type(transport), "carries_notifications", False
        ):
            _LOG.warning(
                "Using RPC transport for notifications. Please use "
                "get_notification_transport to obtain a notification transport instance."
            )
        self.transport = transport
        self.publisher_id = publisher_id
        self.retry = section.retry if retry is None else retry
        if isinstance(topics, str):
            topics = [topics]
        self._topics = list(section.topics if topics is None else topics)
        self._serializer = serializer or msg_serializer.NoOpSerializer()
        self._schemas = notify_schemas.default_registry if schemas is None else schemas
        self._schemas.load()
        names = [driver] if driver is not None else list(section.driver)
        self._drivers = _load_drivers(conf, names, self._topics, transport)

    def prepare(
        self, publisher_id: str | None | Unset = UNSET, retry: int | None | Unset = UNSET
    ) -> Notifier:
        """A notifier sharing this one's drivers, with another publisher id or retry."""
        prepared = copy.copy(self)
        if publisher_id is not UNSET:
            prepared.publisher_id = publisher_id  # type: ignore[assignment]
        if retry is not UNSET:
            prepared.retry = retry  # type: ignore[assignment]
        return prepared

    def is_enabled(self) -> bool:
        """False only when the sole driver is ``noop`` (oslo.messaging's rule)."""
        return [name for name, _ in self._drivers] != ["noop"]

    # -- sending ----------------------------------------------------------------

    def _notify(
        self,
        ctxt: Any,
        event_type: str,
        payload: Any,
        priority: str,
        publisher_id: str | None = None,
        retry: int | None = None,
    ) -> None:
        if not isinstance(event_type, str) or not event_type.strip():
            raise exceptions.InvalidNotification(
                f"event_type must be a non-empty string, got {event_type!r}", event_type
            )
        level = priority.upper() if isinstance(priority, str) else priority
        if level not in _PRIORITIES:
            raise exceptions.InvalidNotification(
                f"unknown notification priority {priority!r} for {event_type!r} "
                f"(known: {', '.join(p.lower() for p in sorted(_PRIORITIES))})",
                event_type,
            )
        if level == "WARNING":
            level = "WARN"
        context, message = self._message(ctxt, event_type, payload, level, publisher_id)
        self._publish(context, message, self.retry if retry is None else retry)

    def _message(
        self, ctxt: Any, event_type: str, payload: Any, level: str, publisher_id: str | None
    ) -> tuple[Any, dict[str, Any]]:
        """The context and message to send, checked against JSON and the schema."""
        payload = self._serializer.serialize_entity(ctxt, payload)
        context = self._serializer.serialize_context(redaction.sanitize_context(ctxt))
        self._check(event_type, payload, context)
        message = {
            "message_id": str(uuid.uuid4()),
            "publisher_id": publisher_id or self.publisher_id,
            "event_type": event_type,
            "priority": level,
            "payload": payload,
            "timestamp": _timestamp(),
        }
        return context, message

    def _check(self, event_type: str, payload: Any, context: Any) -> None:
        """Refuse what cannot be sent or does not match the schema."""
        try:
            text = wire.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise exceptions.InvalidNotification(
                f"the payload of {event_type!r} cannot be sent as JSON: {exc}", event_type
            ) from None
        if isinstance(context, Mapping):  # an object context is converted when sent
            try:
                wire.dumps(context)
            except (TypeError, ValueError) as exc:
                raise exceptions.InvalidNotification(
                    f"the context of {event_type!r} cannot be sent as JSON: {exc}; "
                    "give the notifier a serializer that converts it",
                    event_type,
                ) from None
        if event_type in self._schemas:
            # Validate what travels: datetimes as strings, tuples as lists.
            self._schemas.validate(event_type, json.loads(text))

    def _publish(self, context: Any, message: dict[str, Any], retry: Any) -> None:
        priority = message["priority"]
        publication = self._before(context, message)
        started = time.perf_counter()
        errors: dict[str, BaseException] = {}
        for name, driver in self._drivers:
            try:
                driver.notify(context, message, priority, retry)
            except Exception as exc:  # noqa: BLE001 - logged; a notification never breaks its sender
                self._failed(message, name, exc, errors)
        self._after(publication, started, errors)

    def _before(self, context: Any, message: dict[str, Any]) -> hooks.Publication | None:
        """Tell the before-publish hooks; the publication the others will get, if watched."""
        if not (
            hooks.before_publish.receivers
            or hooks.after_publish.receivers
            or hooks.publish_failed.receivers
        ):
            return None
        names = tuple(name for name, _ in self._drivers)
        publication = hooks.Publication(self, message, context, names)
        hooks.before_publish.send(publication)
        return publication

    @staticmethod
    def _failed(
        message: dict[str, Any], name: str, exc: BaseException, errors: dict[str, BaseException]
    ) -> None:
        _LOG.error(
            "Could not send %r notification through the %s driver",
            message["event_type"],
            name,
            exc_info=exc,
        )
        errors[name] = exc

    def _after(
        self,
        publication: hooks.Publication | None,
        started: float,
        errors: dict[str, BaseException],
    ) -> None:
        """Tell the after-publish or publish-failed hooks."""
        if publication is None:
            return
        elapsed = time.perf_counter() - started
        if errors:
            hooks.publish_failed.send(
                dataclasses.replace(publication, elapsed=elapsed, errors=errors)
            )
        else:
            hooks.after_publish.send(dataclasses.replace(publication, elapsed=elapsed))

    # -- one method per priority --------------------------------------------------

    def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at AUDIT priority."""
        self._notify(ctxt, event_type, payload, "AUDIT")

    def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at DEBUG priority."""
        self._notify(ctxt, event_type, payload, "DEBUG")

    def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at INFO priority."""
        self._notify(ctxt, event_type, payload, "INFO")

    def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at WARN priority."""
        self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at ERROR priority."""
        self._notify(ctxt, event_type, payload, "ERROR")

    def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at CRITICAL priority."""
        self._notify(ctxt, event_type, payload, "CRITICAL")

    def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send ``event_type`` at SAMPLE priority: frequent, small measurements.

        Not every driver keeps them (``log`` drops them).
        """
        self._notify(ctxt, event_type, payload, "SAMPLE")

    def __repr__(self) -> str:
        names = ",".join(name for name, _ in self._drivers) or "none"
        return (
            f"<Notifier publisher_id={self.publisher_id!r} drivers={names} topics={self._topics}>"
        )
