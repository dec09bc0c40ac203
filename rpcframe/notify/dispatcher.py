"""Notification dispatch: which endpoint methods see a notification, and what they decide.

Endpoints are plain objects with a method per priority they handle
(``audit``, ``debug``, ``info``, ``warn``, ``error``, ``critical``,
``sample``), called as ``method(ctxt, publisher_id, event_type, payload,
metadata)``; batch endpoints get one list of dicts with those keys instead.
``metadata`` is oslo.messaging's dict, ``{"message_id": ..., "timestamp":
...}``, exactly (so tests that compare it with a dict still pass); who sent
the notification, when the notifier said so, is its attribute
``metadata.sender`` (a :class:`~rpcframe.identity.Sender`, or None). An
endpoint with a ``filter_rule`` (:class:`~rpcframe.NotificationFilter`) only
sees what matches it.

A dispatcher takes what a listener received: rpcframe's parsed
:class:`~rpcframe.wire.notifications.Notification`, or an oslo-style message with
``ctxt`` and a ``message`` dict (as oslo.messaging's tests build them). A
notification of a priority that is not one of :data:`PRIORITIES` is logged
and dispatched to nobody (``dispatch`` returns None; the listener
acknowledges it).

Endpoints are called in order. Each decides the message's fate by what it
returns or raises:

* ``None`` or :attr:`NotificationResult.HANDLED`: handled; the next endpoint
  is called.
* :attr:`NotificationResult.REQUEUE`, or raising
  :class:`~rpcframe.exceptions.Requeue`: redeliver it; later endpoints are
  not called.
* raising :class:`~rpcframe.exceptions.Drop`: acknowledge it; later
  endpoints are not called.
* raising :class:`~rpcframe.exceptions.HaltListener`: settle it and stop the
  listener.
* raising anything else: logged with its traceback, then as REQUEUE.

The listener acknowledges instead of requeueing when it was built without
``allow_requeue``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from rpcframe import exceptions, identity, wire
from rpcframe import serializer as msg_serializer

__all__ = [
    "PRIORITIES",
    "BatchNotificationDispatcher",
    "Metadata",
    "NotificationDispatcher",
    "NotificationResult",
]

LOG = logging.getLogger(__name__)

#: The priorities endpoints may handle, lower case, as their method names.
PRIORITIES = list(wire.PRIORITIES)


class NotificationResult:
    """What a notification endpoint may return."""

    HANDLED = "handled"
    REQUEUE = "requeue"


Callback = tuple[Any, Callable[..., Any]]  # (filter_rule or None, bound method)


class Metadata(dict):
    """A notification's ``metadata``: oslo's dict, plus who sent it as ``.sender``."""

    __slots__ = ("sender",)

    def __init__(self, message_id: Any, timestamp: Any, sender: Any = None) -> None:
        super().__init__(message_id=message_id, timestamp=timestamp)
        #: The :class:`~rpcframe.identity.Sender` the notifier named, or None.
        self.sender = sender


def _fields(incoming: Any) -> tuple[str, Any, dict[str, Any]]:
    """(priority, wire context, message fields) of a received notification."""
    if isinstance(incoming, wire.Notification):
        return (
            incoming.priority,
            incoming.context,
            {
                "publisher_id": incoming.publisher_id,
                "event_type": incoming.event_type,
                "payload": incoming.payload,
                "message_id": incoming.message_id,
                "timestamp": incoming.timestamp,
                "sender": incoming.sender,
            },
        )
    message = incoming.message
    priority = message.get("priority") or ""
    return str(priority).lower(), incoming.ctxt, message


class NotificationDispatcher:
    """Calls the endpoints of one priority for each notification.

    :param endpoints: endpoint objects.
    :param serializer: rebuilds the context and payload from the wire.
    """

    def __init__(
        self, endpoints: Sequence[Any], serializer: msg_serializer.Serializer | None = None
    ) -> None:
        self.endpoints = endpoints  # the caller's list, as oslo keeps it
        self.serializer = serializer or msg_serializer.NoOpSerializer()
        self._callbacks: dict[str, list[Callback]] = {}
        for endpoint, priority in itertools.product(self.endpoints, PRIORITIES):
            method = getattr(endpoint, priority, None)
            if callable(method):
                rule = getattr(endpoint, "filter_rule", None)
                self._callbacks.setdefault(priority, []).append((rule, method))

    @property
    def supported_priorities(self) -> list[str]:
        """The priorities some endpoint handles, in :data:`PRIORITIES` order."""
        return [p for p in PRIORITIES if p in self._callbacks]

    def extract(self, incoming: Any) -> dict[str, Any]:
        """What endpoints and filters see of a notification."""
        return self._extract(*_fields(incoming)[1:])

    def _extract(self, context: Any, fields: dict[str, Any]) -> dict[str, Any]:
        ctxt = self.serializer.deserialize_context(context)
        return {
            "ctxt": ctxt,
            "publisher_id": fields.get("publisher_id"),
            "event_type": fields.get("event_type"),
            "payload": self.serializer.deserialize_entity(ctxt, fields.get("payload")),
            "metadata": Metadata(
                fields.get("message_id"),
                fields.get("timestamp"),
                identity.Sender.from_wire(fields.get("sender")),
            ),
        }

    @staticmethod
    def _shown(rule: Any, message: dict[str, Any]) -> bool:
        return rule is None or rule.match(
            message["ctxt"],
            message["publisher_id"],
            message["event_type"],
            message["metadata"],
            message["payload"],
        )

    @classmethod
    def _decide(cls, method: Callable[..., Any], args: tuple[Any, ...], what: str) -> str | None:
        """Call one endpoint method; None means go on to the next endpoint.

        HaltListener propagates: the listener settles and stops.
        """
        try:
            result = method(*args)
        except exceptions.HaltListener:
            raise
        except Exception as exc:  # noqa: BLE001 - judged below, logged there
            return cls.judge(None, exc, what)
        return cls.judge(result, None, what)

    @staticmethod
    def judge(result: Any, error: BaseException | None, what: str) -> str | None:
        """What an endpoint's return value or exception means for the message.

        None: go on to the next endpoint. For servers that call the endpoint
        themselves (:mod:`rpcframe.aio.notify`); HaltListener is theirs to handle.
        """
        if isinstance(error, exceptions.Requeue):
            return NotificationResult.REQUEUE
        if isinstance(error, exceptions.Drop):
            return NotificationResult.HANDLED
        if error is not None:
            LOG.error(
                "Notification endpoint failed on %s; it will be requeued if allowed",
                what,
                exc_info=error,
            )
            return NotificationResult.REQUEUE
        if result == NotificationResult.REQUEUE:
            return NotificationResult.REQUEUE
        return None

    def plan(self, incoming: Any) -> list[tuple[Callable[..., Any], tuple[Any, ...], str]] | None:
        """The endpoint calls one notification makes, in order: ``(method, args, what)``.

        None for a priority that is not one of :data:`PRIORITIES`. Filters are
        applied here; a server runs the calls until one decides (:meth:`judge`).
        """
        priority, context, fields = _fields(incoming)
        if priority not in PRIORITIES:
            LOG.warning('Unknown priority "%s"', priority)
            return None
        callbacks = self._callbacks.get(priority)
        if not callbacks:
            return []
        message = self._extract(context, fields)
        what = f"{message['event_type']!r} ({message['metadata']['message_id']})"
        args = (
            message["ctxt"],
            message["publisher_id"],
            message["event_type"],
            message["payload"],
            message["metadata"],
        )
        return [(method, args, what) for rule, method in callbacks if self._shown(rule, message)]

    def dispatch(self, incoming: Any) -> str | None:
        """Run the endpoints for one notification; return HANDLED or REQUEUE.

        None for a priority that is not one of :data:`PRIORITIES`.
        """
        calls = self.plan(incoming)
        if calls is None:
            return None
        for method, args, what in calls:
            decision = self._decide(method, args, what)
            if decision is not None:
                return decision
        return NotificationResult.HANDLED


class BatchNotificationDispatcher(NotificationDispatcher):
    """Calls each endpoint once per batch, per priority, with a list of messages."""

    def dispatch_batch(self, notifications: Sequence[Any]) -> set[int]:
        """Run the endpoints on a batch; return the indexes of messages to requeue.

        A priority group's decision covers every message of that group.
        HaltListener propagates (the listener settles the batch and stops).
        """
        requeue: set[int] = set()
        for indexes, calls in self.plan_batch(notifications):
            for method, args, what in calls:
                decision = self._decide(method, args, what)
                if decision == NotificationResult.REQUEUE:
                    requeue.update(indexes)
                if decision is not None:
                    break
        return requeue

    def plan_batch(
        self, notifications: Sequence[Any]
    ) -> list[tuple[list[int], list[tuple[Callable[..., Any], tuple[Any, ...], str]]]]:
        """Per priority group: the indexes it covers and the endpoint calls it makes."""
        groups: dict[str, list[int]] = {}
        fields = [_fields(n) for n in notifications]
        for index, (priority, _, _) in enumerate(fields):
            groups.setdefault(priority, []).append(index)
        for priority in set(groups) - set(PRIORITIES):
            LOG.warning('Unknown priority "%s"', priority)
        planned = []
        for priority in PRIORITIES:
            indexes = groups.get(priority)
            callbacks = self._callbacks.get(priority)
            if not indexes or not callbacks:
                continue
            messages = [self._extract(*fields[i][1:]) for i in indexes]
            what = f"a batch of {len(messages)} {priority} notifications"
            calls = []
            for rule, method in callbacks:
                shown = [m for m in messages if self._shown(rule, m)]
                if shown:
                    calls.append((method, (shown,), what))
            planned.append((indexes, calls))
        return planned
