"""Notification dispatch: which endpoint methods see a notification, and what they decide.

Endpoints are plain objects with a method per priority they handle
(``audit``, ``debug``, ``info``, ``warn``, ``error``, ``critical``,
``sample``), called as ``method(ctxt, publisher_id, event_type, payload,
metadata)``; batch endpoints get one list of dicts with those keys instead.
``metadata`` holds ``message_id`` and ``timestamp``, and ``sender`` (a
:class:`~rpcframe.identity.Sender`) when the notifier said who it was. An
endpoint with a ``filter_rule`` (:class:`~rpcframe.NotificationFilter`) only
sees what matches it.

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


class NotificationDispatcher:
    """Calls the endpoints of one priority for each notification.

    :param endpoints: endpoint objects.
    :param serializer: rebuilds the context and payload from the wire.
    """

    def __init__(
        self, endpoints: Sequence[Any], serializer: msg_serializer.Serializer | None = None
    ) -> None:
        self.endpoints = list(endpoints)
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

    def extract(self, notification: wire.Notification) -> dict[str, Any]:
        """What endpoints and filters see of a notification."""
        ctxt = self.serializer.deserialize_context(notification.context)
        metadata: dict[str, Any] = {
            "message_id": notification.message_id,
            "timestamp": notification.timestamp,
        }
        sender = identity.Sender.from_wire(notification.sender)
        if sender is not None:
            metadata["sender"] = sender
        return {
            "ctxt": ctxt,
            "publisher_id": notification.publisher_id,
            "event_type": notification.event_type,
            "payload": self.serializer.deserialize_entity(ctxt, notification.payload),
            "metadata": metadata,
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

    @staticmethod
    def _decide(method: Callable[..., Any], args: tuple[Any, ...], what: str) -> str | None:
        """Call one endpoint method; None means go on to the next endpoint.

        HaltListener propagates: the listener settles and stops.
        """
        try:
            result = method(*args)
        except exceptions.Requeue:
            return NotificationResult.REQUEUE
        except exceptions.Drop:
            return NotificationResult.HANDLED
        except exceptions.HaltListener:
            raise
        except Exception:
            LOG.exception(
                "Notification endpoint failed on %s; it will be requeued if allowed", what
            )
            return NotificationResult.REQUEUE
        if result == NotificationResult.REQUEUE:
            return NotificationResult.REQUEUE
        return None

    def dispatch(self, notification: wire.Notification) -> str:
        """Run the endpoints for one notification; return HANDLED or REQUEUE."""
        callbacks = self._callbacks.get(notification.priority)
        if not callbacks:
            return NotificationResult.HANDLED
        message = self.extract(notification)
        what = f"{notification.event_type!r} ({notification.message_id})"
        for rule, method in callbacks:
            if not self._shown(rule, message):
                continue
            args = (
                message["ctxt"],
                message["publisher_id"],
                message["event_type"],
                message["payload"],
                message["metadata"],
            )
            decision = self._decide(method, args, what)
            if decision is not None:
                return decision
        return NotificationResult.HANDLED


class BatchNotificationDispatcher(NotificationDispatcher):
    """Calls each endpoint once per batch, per priority, with a list of messages."""

    def dispatch_batch(self, notifications: Sequence[wire.Notification]) -> set[int]:
        """Run the endpoints on a batch; return the indexes of messages to requeue.

        A priority group's decision covers every message of that group.
        HaltListener propagates (the listener settles the batch and stops).
        """
        requeue: set[int] = set()
        groups: dict[str, list[int]] = {}
        for index, notification in enumerate(notifications):
            groups.setdefault(notification.priority, []).append(index)
        for priority in PRIORITIES:
            indexes = groups.get(priority)
            callbacks = self._callbacks.get(priority)
            if not indexes or not callbacks:
                continue
            messages = [self.extract(notifications[i]) for i in indexes]
            what = f"a batch of {len(messages)} {priority} notifications"
            for rule, method in callbacks:
                shown = [m for m in messages if self._shown(rule, m)]
                if not shown:
                    continue
                decision = self._decide(method, (shown,), what)
                if decision == NotificationResult.REQUEUE:
                    requeue.update(indexes)
                if decision is not None:
                    break
        return requeue
