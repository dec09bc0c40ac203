"""Publish hooks: signals a Notifier sends around every notification.

Three process-wide signals, for metrics, audit trails and tests::

    from rpcframe.notify import hooks

    @hooks.after_publish.connect
    def count(publication):
        METRICS.incr(f"notifications.{publication.priority.lower()}")

* :data:`before_publish` - the notification is valid and about to go to the
  notifier's drivers.
* :data:`after_publish` - every driver took it; ``publication.elapsed`` says
  how long that took.
* :data:`publish_failed` - at least one driver raised; ``publication.errors``
  maps each failing driver's name to its exception. (The notifier logs and
  does not raise, as oslo.messaging's does.)

Receivers are called in the publishing thread, in the order they were
connected, with one :class:`Publication`. A receiver that raises is logged
and skipped: a broken metrics hook never stops a notification. Receivers are
held by strong reference until disconnected.

Why not a signal library: blinker, the well-kept one, holds receivers weakly
by default (a lambda connected in a function silently disappears) and lets a
receiver's exception escape into the sender; both are wrong for hooks around
publishing, and what is needed here is a few dozen lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = [
    "Publication",
    "Signal",
    "after_publish",
    "before_publish",
    "publish_failed",
]

LOG = logging.getLogger(__name__)

Receiver = Callable[["Publication"], Any]


@dataclasses.dataclass(frozen=True)
class Publication:
    """One notification on its way out, as the hooks see it.

    :param notifier: the Notifier (or prepared notifier) that sends it.
    :param message: what the drivers are given: ``message_id``,
        ``publisher_id``, ``event_type``, ``priority``, ``payload``,
        ``timestamp``.
    :param context: the sanitised context that goes with it.
    :param drivers: the names of the drivers it goes to (may be empty).
    :param elapsed: seconds the drivers took (``after_publish`` and
        ``publish_failed`` only).
    :param errors: driver name to the exception it raised
        (``publish_failed`` only).
    """

    notifier: Any
    message: Mapping[str, Any]
    context: Mapping[str, Any]
    drivers: tuple[str, ...]
    elapsed: float | None = None
    errors: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)

    @property
    def event_type(self) -> str:
        return self.message["event_type"]

    @property
    def priority(self) -> str:
        """Upper case, as on the wire: ``"INFO"``."""
        return self.message["priority"]

    @property
    def publisher_id(self) -> str | None:
        return self.message["publisher_id"]

    @property
    def payload(self) -> Any:
        return self.message["payload"]


class Signal:
    """A named list of receivers; ``send`` calls each of them.

    Connecting and disconnecting are thread-safe and may happen while
    another thread sends; a send sees the receivers connected when it began.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        # Replaced, never mutated, so send() reads it without the lock.
        self._receivers: tuple[Receiver, ...] = ()

    @property
    def receivers(self) -> tuple[Receiver, ...]:
        return self._receivers

    def connect(self, receiver: Receiver) -> Receiver:
        """Call ``receiver(publication)`` on every send. Returns it (a decorator)."""
        if not callable(receiver):
            raise TypeError(f"a {self.name} receiver must be callable, got {receiver!r}")
        with self._lock:
            if receiver not in self._receivers:
                self._receivers = (*self._receivers, receiver)
        return receiver

    def disconnect(self, receiver: Receiver) -> None:
        """Stop calling ``receiver``; nothing happens if it was not connected."""
        with self._lock:
            self._receivers = tuple(r for r in self._receivers if r != receiver)

    @contextlib.contextmanager
    def connected(self, receiver: Receiver) -> Iterator[Receiver]:
        """Connect ``receiver`` for the duration of a ``with`` block."""
        self.connect(receiver)
        try:
            yield receiver
        finally:
            self.disconnect(receiver)

    def send(self, publication: Publication) -> None:
        """Call every receiver with ``publication``; log the ones that raise."""
        for receiver in self._receivers:
            try:
                receiver(publication)
            except Exception:
                LOG.exception(
                    "%s hook %r failed for %r; ignored",
                    self.name,
                    receiver,
                    publication.message.get("event_type"),
                )

    def __repr__(self) -> str:
        return f"<Signal {self.name} receivers={len(self._receivers)}>"


#: Sent when a valid notification is about to go to the drivers.
before_publish = Signal("before_publish")
#: Sent when every driver took the notification.
after_publish = Signal("after_publish")
#: Sent when at least one driver failed to send the notification.
publish_failed = Signal("publish_failed")
