"""Notification listeners: receive notifications and hand them to endpoints.

::

    class InstanceEndpoint:
        def info(self, ctxt, publisher_id, event_type, payload, metadata):
            ...

    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic="notifications")], [InstanceEndpoint()],
        pool="billing", allow_requeue=True,
    )
    listener.start()

A listener subscribes to ``<topic>.<priority>`` of each target for every
priority some endpoint handles. Listeners with the same ``pool`` share one
queue (each notification goes to one of them); each pool, and the listeners
without a pool, get their own copy. Listeners run on the same executors as
RPC servers and have the same ``start``/``stop``/``wait`` lifecycle.

Each message is parsed, checked against its event type's schema, and handed
to the dispatcher (:mod:`rpcframe.notify.dispatcher` says what endpoints may
decide). It is acknowledged after the endpoints return, or requeued when
they ask for it and the listener was built with ``allow_requeue``. A body
that is not a notification, or a payload its schema refuses, is logged and
acknowledged; it never reaches an endpoint and never stops the listener.

Batch listeners hand endpoints up to ``batch_size`` messages at once. A
batch starts with the first message that arrives and is handed over when it
is full or ``batch_timeout`` seconds after that first message, whichever
comes first; an idle listener does not wake up.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from rpcframe import exceptions, leniency, wire
from rpcframe import serializer as msg_serializer
from rpcframe import server as msg_server
from rpcframe import transport as msg_transport
from rpcframe.drivers import base
from rpcframe.notify import dispatcher as notify_dispatcher
from rpcframe.notify import schemas as notify_schemas
from rpcframe.target import Target

__all__ = [
    "BatchNotificationServer",
    "NotificationServer",
    "NotificationServerBase",
    "get_batch_notification_listener",
    "get_notification_listener",
]

LOG = logging.getLogger(__name__)


class NotificationServerBase(msg_server.MessageHandlingServer):
    """What single and batch listeners share: subscription, parsing, settling.

    :param transport: from :func:`~rpcframe.get_notification_transport`.
    :param targets: Targets with a ``topic`` (and optionally ``exchange``).
    :param dispatcher: a :class:`NotificationDispatcher` over the endpoints.
    :param executor: ``"threading"`` (default) or ``"eventlet"``.
    :param allow_requeue: requeue what endpoints ask to; needs a driver that
        can (ConfigurationError here otherwise).
    :param pool: share a queue with the listeners of the same pool.
    :param schemas: the registry to validate against (default: the
        process-wide one).
    """

    def __init__(
        self,
        transport: msg_transport.Transport,
        targets: Sequence[Target],
        dispatcher: notify_dispatcher.NotificationDispatcher,
        executor: str | None = None,
        allow_requeue: bool = True,
        pool: str | None = None,
        batch_size: int | None = 1,
        batch_timeout: float | None = None,
        *,
        schemas: notify_schemas.SchemaRegistry | None = None,
    ) -> None:
        self.targets = _check_targets(targets)
        if pool is not None and (not isinstance(pool, str) or not pool):
            raise ValueError(f"pool must be a non-empty string or None, got {pool!r}")
        _check_batch(batch_size, batch_timeout)
        priorities = dispatcher.supported_priorities
        if not priorities:
            LOG.info(
                "No endpoint has a method for any notification priority (%s): "
                "this listener will receive nothing",
                ", ".join(notify_dispatcher.PRIORITIES),
            )
        if not isinstance(transport, msg_transport.NotificationTransport):
            LOG.warning(
                "Using RPC transport for notifications. Please use "
                "get_notification_transport to obtain a notification transport instance."
            )
        transport._require_driver_features(requeue=allow_requeue, pool=pool is not None)
        super().__init__(transport, dispatcher, executor)
        self._allow_requeue = allow_requeue
        self._pool = pool
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout
        # A free worker takes a batch: the listener's window is as many
        # messages per free worker (none without a batch size).
        self._window_unit = batch_size
        self._schemas = notify_schemas.default_registry if schemas is None else schemas
        self._schemas.load()
        self._priorities = priorities
        self._passes_objects = transport.capabilities.passes_objects is True

    @property
    def _name(self) -> str:
        return f"rpcframe-notify-{self.targets[0].topic}"

    def _create_listener(self) -> base.Listener:
        return self.transport._listen_for_notifications(
            list(itertools.product(self.targets, self._priorities)),
            self._pool,
            self._batch_size,
            self._batch_timeout,
        )

    # -- one message -------------------------------------------------------------

    def _accept(self, incoming: base.IncomingMessage) -> wire.Notification | None:
        """Parse and validate; None for what no endpoint may see (the caller settles it)."""
        try:
            notification = wire.parse_notification(incoming.body)
            self._schemas.validate(notification.event_type, notification.payload)
        except exceptions.MalformedMessage as exc:
            LOG.warning("%s: dropping a malformed notification: %s", self._name, exc.reason)
        except exceptions.ValidationError as exc:
            LOG.warning("%s: dropping an invalid notification: %s", self._name, exc)
        else:
            if self._passes_objects:
                attached = getattr(incoming, "attachments", None)
                notification.context = leniency.context(attached, notification.context)
            return notification
        return None

    def _settle(self, incoming: base.IncomingMessage, requeue: bool) -> None:
        try:
            if requeue and self._allow_requeue:
                incoming.requeue()
            else:
                incoming.ack()
        except exceptions.MessagingException as exc:
            LOG.warning("%s: could not settle a notification: %s", self._name, exc)

    def _halt(self, halt: exceptions.HaltListener) -> None:
        LOG.info("%s: an endpoint halted the listener: %s", self._name, halt.reason or "no reason")
        self.stop()


class NotificationServer(NotificationServerBase):
    """A listener that hands notifications to endpoints one at a time.

    Build it with :func:`get_notification_listener`.
    """

    def __init__(
        self,
        transport: msg_transport.Transport,
        targets: Sequence[Target],
        dispatcher: notify_dispatcher.NotificationDispatcher,
        executor: str | None = None,
        allow_requeue: bool = True,
        pool: str | None = None,
        *,
        schemas: notify_schemas.SchemaRegistry | None = None,
    ) -> None:
        super().__init__(
            transport, targets, dispatcher, executor, allow_requeue, pool, 1, None, schemas=schemas
        )

    def _process_incoming(self, incoming: base.IncomingMessage) -> None:
        # Settled on every path, an unexpected error included (it is then
        # acknowledged: it would fail again on every redelivery).
        requeue = False
        halt = None
        try:
            notification = self._accept(incoming)
            if notification is not None:
                requeue, halt = self._dispatch(notification)
        finally:
            self._settle(incoming, requeue)
        if halt is not None:
            self._halt(halt)

    def _dispatch(
        self, notification: wire.Notification
    ) -> tuple[bool, exceptions.HaltListener | None]:
        """Run the endpoints; return whether to requeue, and a halt they asked for."""
        try:
            result = self.dispatcher.dispatch(notification)
        except exceptions.HaltListener as halt:
            return halt.requeue, halt
        except Exception:
            # Endpoint errors are the dispatcher's to handle; this is anything
            # else (a serializer failing, say), which would fail again on every
            # redelivery: log it and acknowledge rather than loop on it.
            LOG.exception(
                "%s: dropping notification %s (%r): it could not be dispatched",
                self._name,
                notification.message_id,
                notification.event_type,
            )
            return False, None
        return result == notify_dispatcher.NotificationResult.REQUEUE, None


class BatchNotificationServer(NotificationServerBase):
    """A listener that hands endpoints lists of notifications.

    Build it with :func:`get_batch_notification_listener`. One worker at a
    time collects a batch, so batches are as full as the traffic allows.
    """

    _receive_alone = True

    def _receive(self, listener: base.Listener) -> list[base.IncomingMessage] | None:
        first = listener.poll(None)
        if first is None:
            return None
        batch = [first]
        size, timeout = self._batch_size, self._batch_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while size is None or len(batch) < size:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            incoming = listener.poll(left)
            if incoming is None:  # the time is up, or the listener closed
                break
            batch.append(incoming)
        return batch

    def _process_incoming(self, batch: list[base.IncomingMessage]) -> None:
        # Every message of the batch is settled on every path, as in
        # NotificationServer; only those the endpoints asked for are requeued.
        requeue: set[int] = set()
        halt = None
        accepted: list[tuple[base.IncomingMessage, wire.Notification]] = []
        try:
            for incoming in batch:
                notification = self._accept(incoming)
                if notification is not None:
                    accepted.append((incoming, notification))
            if accepted:
                requeue, halt = self._dispatch_batch([n for _, n in accepted])
        finally:
            chosen = {id(accepted[index][0]) for index in requeue}
            for incoming in batch:
                self._settle(incoming, requeue=id(incoming) in chosen)
        if halt is not None:
            self._halt(halt)

    def _dispatch_batch(
        self, notifications: list[wire.Notification]
    ) -> tuple[set[int], exceptions.HaltListener | None]:
        dispatcher: notify_dispatcher.BatchNotificationDispatcher = self.dispatcher
        try:
            return dispatcher.dispatch_batch(notifications), None
        except exceptions.HaltListener as halt:
            return (set(range(len(notifications))) if halt.requeue else set()), halt
        except Exception:
            LOG.exception(
                "%s: dropping a batch of %d notifications: it could not be dispatched",
                self._name,
                len(notifications),
            )
            return set(), None


def _check_targets(targets: Sequence[Target]) -> list[Target]:
    # What each target must have (a topic) is checked when the listener
    # starts, where oslo.messaging checks it.
    if isinstance(targets, Target) or not isinstance(targets, (list, tuple)):
        raise TypeError(f"targets must be a list of Target, got {type(targets).__name__}")
    return list(targets)


def _check_batch(batch_size: Any, batch_timeout: Any) -> None:
    if batch_size is not None and (
        isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if batch_timeout is not None and (
        isinstance(batch_timeout, bool)
        or not isinstance(batch_timeout, (int, float))
        or batch_timeout <= 0
    ):
        raise ValueError(
            f"batch_timeout must be a positive number of seconds or None, got {batch_timeout!r}"
        )
    if batch_size is None and batch_timeout is None:
        raise ValueError(
            "a batch listener needs batch_size, batch_timeout or both: with neither "
            "it would never hand a batch over"
        )


def get_notification_listener(
    transport: msg_transport.Transport,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    allow_requeue: bool = False,
    pool: str | None = None,
    *,
    schemas: notify_schemas.SchemaRegistry | None = None,
) -> NotificationServer:
    """Build a listener that calls ``endpoints`` for notifications on ``targets``.

    Raises ConfigurationError when ``allow_requeue`` or ``pool`` asks for
    something the transport's driver cannot do.
    """
    dispatcher = notify_dispatcher.NotificationDispatcher(endpoints, serializer)
    return NotificationServer(
        transport, targets, dispatcher, executor, allow_requeue, pool, schemas=schemas
    )


def get_batch_notification_listener(
    transport: msg_transport.Transport,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    executor: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    allow_requeue: bool = False,
    pool: str | None = None,
    batch_size: int | None = None,
    batch_timeout: float | None = None,
    *,
    schemas: notify_schemas.SchemaRegistry | None = None,
) -> BatchNotificationServer:
    """Build a listener that calls ``endpoints`` with lists of notifications.

    :param batch_size: at most this many messages per call (None: no limit).
    :param batch_timeout: hand a batch over at the latest this many seconds
        after its first message (None: only when full). At least one of the
        two is required.
    """
    dispatcher = notify_dispatcher.BatchNotificationDispatcher(endpoints, serializer)
    return BatchNotificationServer(
        transport,
        targets,
        dispatcher,
        executor,
        allow_requeue,
        pool,
        batch_size,
        batch_timeout,
        schemas=schemas,
    )
