"""Recording notifications in users' unit tests: what did this code notify?

::

    from rpcframe.notify.testing import record_notifications

    def test_creating_an_instance_announces_it():
        with record_notifications() as recorded:
            service.create_instance(ctxt, "i-1")
        recorded.assert_notified(
            "compute.instance.create.end", priority="info",
            payload_contains={"instance_id": "i-1"},
        )

The recorder listens to the notifier's ``before_publish`` hook, so it sees
every notification any Notifier in the process sends while the block runs,
whatever its drivers (``messagingv2`` on ``fake://``, ``test``, ``noop``, or
none configured): no broker, listener or configuration is needed. It
records what passed the notifier's checks; a notification refused for its
schema raised ValidationError in the code under test instead.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rpcframe.notify import hooks

__all__ = ["NotificationRecorder", "RecordedNotification", "record_notifications"]


class _Anything:
    def __repr__(self) -> str:
        return "<anything>"


_ANYTHING = _Anything()


@dataclasses.dataclass(frozen=True)
class RecordedNotification:
    """One notification as it was sent. ``priority`` is lower case, as endpoints name it."""

    event_type: str
    priority: str
    publisher_id: str | None
    payload: Any
    context: Mapping[str, Any]
    message_id: str
    timestamp: str


class NotificationRecorder:
    """Records the notifications sent while it is active (a context manager).

    :param event_type: record only event types matching this shell-style
        pattern (``"compute.instance.*"``).
    :param publisher_id: record only this publisher's notifications.
    """

    def __init__(self, event_type: str | None = None, publisher_id: str | None = None) -> None:
        self._event_type = event_type
        self._publisher_id = publisher_id
        self._lock = threading.Lock()
        self._recorded: list[RecordedNotification] = []

    # -- recording ----------------------------------------------------------------

    def __enter__(self) -> NotificationRecorder:
        hooks.before_publish.connect(self._record)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        hooks.before_publish.disconnect(self._record)

    def _record(self, publication: hooks.Publication) -> None:
        message = publication.message
        if self._event_type is not None and not fnmatch.fnmatchcase(
            message["event_type"], self._event_type
        ):
            return
        if self._publisher_id is not None and message["publisher_id"] != self._publisher_id:
            return
        recorded = RecordedNotification(
            event_type=message["event_type"],
            priority=message["priority"].lower(),
            publisher_id=message["publisher_id"],
            payload=message["payload"],
            context=dict(publication.context),
            message_id=message["message_id"],
            timestamp=message["timestamp"],
        )
        with self._lock:
            self._recorded.append(recorded)

    @property
    def notifications(self) -> list[RecordedNotification]:
        """Everything recorded so far, in the order it was sent."""
        with self._lock:
            return list(self._recorded)

    def event_types(self) -> list[str]:
        return [n.event_type for n in self.notifications]

    def clear(self) -> None:
        with self._lock:
            self._recorded.clear()

    # -- asserting ----------------------------------------------------------------

    def matching(
        self,
        event_type: str | None = None,
        *,
        priority: str | None = None,
        publisher_id: str | None = None,
        payload: Any = _ANYTHING,
        payload_contains: Mapping[str, Any] | None = None,
    ) -> list[RecordedNotification]:
        """The recorded notifications that meet every condition given.

        ``event_type`` is a shell-style pattern; ``priority`` is compared
        case-blind; ``payload`` must be equal; ``payload_contains`` must be
        a subset of a dict payload.
        """
        found = []
        for n in self.notifications:
            if event_type is not None and not fnmatch.fnmatchcase(n.event_type, event_type):
                continue
            if priority is not None and n.priority != priority.lower():
                continue
            if publisher_id is not None and n.publisher_id != publisher_id:
                continue
            if payload is not _ANYTHING and n.payload != payload:
                continue
            if payload_contains is not None and not _contains(n.payload, payload_contains):
                continue
            found.append(n)
        return found

    def assert_notified(
        self,
        event_type: str,
        *,
        priority: str | None = None,
        publisher_id: str | None = None,
        payload: Any = _ANYTHING,
        payload_contains: Mapping[str, Any] | None = None,
        count: int | None = None,
    ) -> RecordedNotification:
        """Fail unless a matching notification was sent (exactly ``count`` times, if given).

        Returns the first match, for further checks.
        """
        found = self.matching(
            event_type,
            priority=priority,
            publisher_id=publisher_id,
            payload=payload,
            payload_contains=payload_contains,
        )
        wanted = _describe(event_type, priority, publisher_id, payload, payload_contains)
        if not found:
            raise AssertionError(f"no notification {wanted}; recorded: {self._summary()}")
        if count is not None and len(found) != count:
            raise AssertionError(
                f"expected {count} notification(s) {wanted}, found {len(found)}; "
                f"recorded: {self._summary()}"
            )
        return found[0]

    def assert_not_notified(
        self,
        event_type: str = "*",
        *,
        priority: str | None = None,
        publisher_id: str | None = None,
    ) -> None:
        """Fail if a matching notification was sent (by default: any at all)."""
        found = self.matching(event_type, priority=priority, publisher_id=publisher_id)
        if found:
            wanted = _describe(event_type, priority, publisher_id, _ANYTHING, None)
            raise AssertionError(
                f"expected no notification {wanted}, found {len(found)}: {self._summary(found)}"
            )

    def _summary(self, notifications: list[RecordedNotification] | None = None) -> str:
        notifications = self.notifications if notifications is None else notifications
        if not notifications:
            return "nothing"
        return ", ".join(
            f"{n.priority} {n.event_type} from {n.publisher_id} {n.payload!r}"
            for n in notifications
        )


def _contains(payload: Any, subset: Mapping[str, Any]) -> bool:
    return isinstance(payload, Mapping) and all(
        key in payload and payload[key] == value for key, value in subset.items()
    )


def _describe(
    event_type: str,
    priority: str | None,
    publisher_id: str | None,
    payload: Any,
    payload_contains: Mapping[str, Any] | None,
) -> str:
    parts = [repr(event_type)]
    if priority is not None:
        parts.append(f"at {priority.lower()}")
    if publisher_id is not None:
        parts.append(f"from {publisher_id!r}")
    if payload is not _ANYTHING:
        parts.append(f"with payload {payload!r}")
    if payload_contains is not None:
        parts.append(f"with payload containing {payload_contains!r}")
    return " ".join(parts)


def record_notifications(
    event_type: str | None = None, publisher_id: str | None = None
) -> NotificationRecorder:
    """A :class:`NotificationRecorder`; use it in a ``with`` block."""
    return NotificationRecorder(event_type, publisher_id)
