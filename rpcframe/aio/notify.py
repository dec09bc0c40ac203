"""asyncio notifiers and notification listeners, on the threaded ones' rules.

::

    notifier = rpcframe.aio.Notifier(transport, "compute.host1", driver="messagingv2",
                                     topics=["notifications"])
    await notifier.info(ctxt, "compute.instance.create.end", payload)

    class Audit:
        async def info(self, ctxt, publisher_id, event_type, payload, metadata):
            await store(event_type, payload)

    listener = rpcframe.aio.get_notification_listener(
        transport, [rpcframe.Target(topic="notifications")], [Audit()], pool="audit"
    )
    await listener.start()

The notifier checks payloads against JSON and the registered schemas, and
tells the publish hooks, exactly as :class:`rpcframe.Notifier` (which it
uses for all of that); only sending is awaited. The ``messaging`` and
``messagingv2`` drivers send through the asyncio transport; ``log``,
``test`` and ``noop`` work as they do for threads; ``routing`` is not
available here yet and is refused by name.

Listeners dispatch through the threaded listener's dispatcher (the same
priorities, filters, ``Requeue``/``Drop``/``HaltListener`` controls and
metadata): ``async def`` endpoint methods run on the loop, plain ones in a
thread pool. A notification is settled on every path (acknowledged after
its endpoints return, requeued when one asks and the listener allows it);
a malformed or invalid one is logged and acknowledged.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import itertools
import logging
import time
from collections.abc import Sequence
from typing import Any

from rpcframe import exceptions, wire
from rpcframe import serializer as msg_serializer
from rpcframe.notify import dispatcher as notify_dispatcher
from rpcframe.notify import messaging
from rpcframe.notify import notifier as sync_notifier
from rpcframe.notify import schemas as notify_schemas
from rpcframe.target import Target
from rpcframe.unset import UNSET, Unset

__all__ = [
    "AsyncBatchNotificationServer",
    "AsyncNotificationServer",
    "Notifier",
    "get_batch_notification_listener",
    "get_notification_listener",
]

LOG = logging.getLogger(__name__)

_SYNC_DRIVERS = ("log", "test", "noop")


class Notifier:
    """Sends notifications from asyncio code; arguments as :class:`rpcframe.Notifier`'s."""

    def __init__(
        self,
        transport: Any,
        publisher_id: str | None = None,
        driver: str | None = None,
        serializer: msg_serializer.Serializer | None = None,
        retry: int | None = None,
        topics: Sequence[str] | None = None,
        *,
        schemas: notify_schemas.SchemaRegistry | None = None,
    ) -> None:
        self._notifier = sync_notifier.Notifier(
            transport, publisher_id, driver, serializer, retry, topics, schemas=schemas
        )
        for name, loaded in self._notifier._drivers:
            if not isinstance(loaded, messaging.MessagingDriver) and name not in _SYNC_DRIVERS:
                raise exceptions.ConfigurationError(
                    f"the {name!r} notification driver is not available to asyncio notifiers; "
                    f"use messagingv2, messaging, {', '.join(_SYNC_DRIVERS)}"
                )

    @property
    def publisher_id(self) -> str | None:
        return self._notifier.publisher_id

    def prepare(
        self, publisher_id: str | None | Unset = UNSET, retry: int | None | Unset = UNSET
    ) -> Notifier:
        """A notifier sharing this one's drivers, with another publisher id or retry."""
        prepared = object.__new__(Notifier)
        prepared._notifier = self._notifier.prepare(publisher_id, retry)
        return prepared

    def is_enabled(self) -> bool:
        return self._notifier.is_enabled()

    async def _notify(self, ctxt: Any, event_type: str, payload: Any, level: str) -> None:
        notifier = self._notifier
        if not isinstance(event_type, str) or not event_type.strip():
            raise exceptions.InvalidNotification(
                f"event_type must be a non-empty string, got {event_type!r}", event_type
            )
        context, message = notifier._message(ctxt, event_type, payload, level, None)
        retry = notifier.retry
        publication = notifier._before(context, message)
        started = time.perf_counter()
        errors: dict[str, BaseException] = {}
        for name, driver in notifier._drivers:
            try:
                if isinstance(driver, messaging.MessagingDriver):
                    await driver.anotify(context, message, level, retry)
                else:
                    driver.notify(context, message, level, retry)
            except Exception as exc:  # noqa: BLE001 - logged; a notification never breaks its sender
                notifier._failed(message, name, exc, errors)
        notifier._after(publication, started, errors)

    async def audit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "AUDIT")

    async def debug(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "DEBUG")

    async def info(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "INFO")

    async def warn(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "WARN")

    warning = warn

    async def error(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "ERROR")

    async def critical(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "CRITICAL")

    async def sample(self, ctxt: Any, event_type: str, payload: Any) -> None:
        await self._notify(ctxt, event_type, payload, "SAMPLE")

    def __repr__(self) -> str:
        return repr(self._notifier).replace("<Notifier", "<aio.Notifier", 1)


class AsyncNotificationServer:
    """Hands notifications to endpoints one at a time each, several at once.

    Build it with :func:`get_notification_listener`. ``await start()``,
    ``await stop()`` (no new notifications), ``await wait()`` (those taken
    finish).
    """

    _batch_size: int | None = None
    _batch_timeout: float | None = None

    def __init__(
        self,
        transport: Any,
        targets: Sequence[Target],
        dispatcher: notify_dispatcher.NotificationDispatcher,
        allow_requeue: bool = True,
        pool: str | None = None,
        *,
        executor_pool: concurrent.futures.Executor | None = None,
        schemas: notify_schemas.SchemaRegistry | None = None,
    ) -> None:
        transport._require_driver_features(requeue=allow_requeue, pool=pool is not None)
        self.transport = transport
        self.conf = transport.conf
        self.targets = list(targets)
        self.dispatcher = dispatcher
        self._allow_requeue = allow_requeue
        self._pool_name = pool
        self._executor = executor_pool
        self._own_executor = executor_pool is None
        self._schemas = notify_schemas.default_registry if schemas is None else schemas
        self._schemas.load()
        self._priorities = dispatcher.supported_priorities
        self._listener: Any = None
        self._receiving: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    @property
    def _name(self) -> str:
        return f"rpcframe-aio-notify-{self.targets[0].topic}"

    async def start(self) -> None:
        if self._receiving is not None:
            return
        if not self._priorities:
            LOG.info("%s: no endpoint has a method for any notification priority", self._name)
        pairs = list(itertools.product(self.targets, self._priorities))
        try:
            self._listener = await self.transport._listen_for_notifications(pairs, self._pool_name)
        except exceptions.TransportDriverError as exc:
            raise exceptions.ServerListenError(self.targets[0], exc) from exc
        size = self.conf.executor_thread_pool_size
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                size, thread_name_prefix=self._name
            )
        self._receiving = asyncio.get_running_loop().create_task(
            self._receive(self._listener, asyncio.Semaphore(size)), name=self._name
        )

    async def stop(self) -> None:
        listener, receiving = self._listener, self._receiving
        self._listener = self._receiving = None
        if listener is not None:
            listener.close()
        if receiving is not None and receiving is not asyncio.current_task():
            await receiving

    async def wait(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self.conf.rpcframe.server_stop_timeout
        running = {t for t in self._running if t is not asyncio.current_task()}
        if running:
            _, pending = await asyncio.wait(running, timeout=timeout)
            if pending:
                LOG.warning("%s: %d notifications still being handled after %.1f s",
                            self._name, len(pending), timeout)  # fmt: skip
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _receive(self, listener: Any, slots: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await slots.acquire()
            batch = await self._take(listener)
            if not batch:
                slots.release()
                return
            task = loop.create_task(self._handle(batch))
            self._running.add(task)
            task.add_done_callback(functools.partial(self._done, slots))

    async def _take(self, listener: Any) -> list[Any]:
        first = await listener.poll()
        return [] if first is None else [first]

    def _done(self, slots: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        slots.release()
        if not task.cancelled() and task.exception() is not None:
            LOG.error("%s: unexpected error while handling notifications", self._name,
                      exc_info=task.exception())  # fmt: skip

    def _accept(self, incoming: Any) -> wire.Notification | None:
        try:
            notification = wire.parse_notification(incoming.body)
            self._schemas.validate(notification.event_type, notification.payload)
        except exceptions.MalformedMessage as exc:
            LOG.warning("%s: dropping a malformed notification: %s", self._name, exc.reason)
        except exceptions.ValidationError as exc:
            LOG.warning("%s: dropping an invalid notification: %s", self._name, exc)
        else:
            return notification
        return None

    async def _call(self, method: Any, args: tuple[Any, ...], what: str) -> str | None:
        """Run one endpoint method (on the loop, or in the pool); judge what it did."""
        try:
            if inspect.iscoroutinefunction(method):
                result = await method(*args)
            else:
                context = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(
                    self._executor, functools.partial(context.run, method, *args)
                )
        except exceptions.HaltListener:
            raise
        except Exception as exc:  # noqa: BLE001 - judged by the dispatcher's rules
            return self.dispatcher.judge(None, exc, what)
        return self.dispatcher.judge(result, None, what)

    async def _handle(self, batch: list[Any]) -> None:
        incoming = batch[0]
        requeue = False
        halt = None
        try:
            notification = self._accept(incoming)
            calls = self.dispatcher.plan(notification) if notification is not None else []
            for method, args, what in calls or []:
                decision = await self._call(method, args, what)
                if decision is not None:
                    requeue = decision == notify_dispatcher.NotificationResult.REQUEUE
                    break
        except exceptions.HaltListener as exc:
            halt, requeue = exc, exc.requeue
        except Exception:
            LOG.exception("%s: dropping a notification that could not be dispatched", self._name)
        finally:
            self._settle(incoming, requeue)
        if halt is not None:
            await self._halt(halt)

    def _settle(self, incoming: Any, requeue: bool) -> None:
        try:
            if requeue and self._allow_requeue:
                incoming.requeue()
            else:
                incoming.ack()
        except exceptions.MessagingException as exc:
            LOG.warning("%s: could not settle a notification: %s", self._name, exc)

    async def _halt(self, halt: exceptions.HaltListener) -> None:
        LOG.info("%s: an endpoint halted the listener: %s", self._name, halt.reason or "no reason")
        await self.stop()


class AsyncBatchNotificationServer(AsyncNotificationServer):
    """Hands endpoints lists of up to ``batch_size`` notifications, or what came
    within ``batch_timeout`` seconds. Build it with :func:`get_batch_notification_listener`.
    """

    dispatcher: notify_dispatcher.BatchNotificationDispatcher

    def __init__(
        self, *args: Any, batch_size: int | None = None, batch_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self._batch_size = batch_size
        self._batch_timeout = batch_timeout

    async def _take(self, listener: Any) -> list[Any]:
        first = await listener.poll()
        if first is None:
            return []
        batch = [first]
        size, timeout = self._batch_size, self._batch_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while size is None or len(batch) < size:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            incoming = await listener.poll(left)
            if incoming is None:
                break
            batch.append(incoming)
        return batch

    async def _handle(self, batch: list[Any]) -> None:
        accepted = []
        requeue: set[int] = set()
        halt = None
        try:
            for incoming in batch:
                notification = self._accept(incoming)
                if notification is None:
                    self._settle(incoming, False)
                else:
                    accepted.append((incoming, notification))
            plan = self.dispatcher.plan_batch([n for _, n in accepted])
            for indexes, calls in plan:
                for method, args, what in calls:
                    decision = await self._call(method, args, what)
                    if decision == notify_dispatcher.NotificationResult.REQUEUE:
                        requeue.update(indexes)
                    if decision is not None:
                        break
        except exceptions.HaltListener as exc:
            halt = exc
            if exc.requeue:
                requeue = set(range(len(accepted)))
        except Exception:
            LOG.exception("%s: dropping a batch that could not be dispatched", self._name)
        finally:
            for index, (incoming, _) in enumerate(accepted):
                self._settle(incoming, index in requeue)
        if halt is not None:
            await self._halt(halt)


def get_notification_listener(
    transport: Any,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    allow_requeue: bool = False,
    pool: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    *,
    executor_pool: concurrent.futures.Executor | None = None,
    schemas: notify_schemas.SchemaRegistry | None = None,
) -> AsyncNotificationServer:
    """An asyncio notification listener; arguments as :func:`rpcframe.get_notification_listener`."""
    dispatcher = notify_dispatcher.NotificationDispatcher(endpoints, serializer)
    return AsyncNotificationServer(
        transport, targets, dispatcher, allow_requeue, pool,
        executor_pool=executor_pool, schemas=schemas,
    )  # fmt: skip


def get_batch_notification_listener(
    transport: Any,
    targets: Sequence[Target],
    endpoints: Sequence[Any],
    allow_requeue: bool = False,
    pool: str | None = None,
    serializer: msg_serializer.Serializer | None = None,
    batch_size: int | None = None,
    batch_timeout: float | None = None,
    *,
    executor_pool: concurrent.futures.Executor | None = None,
    schemas: notify_schemas.SchemaRegistry | None = None,
) -> AsyncBatchNotificationServer:
    """An asyncio batch listener; arguments as :func:`rpcframe.get_batch_notification_listener`."""
    dispatcher = notify_dispatcher.BatchNotificationDispatcher(endpoints, serializer)
    return AsyncBatchNotificationServer(
        transport, targets, dispatcher, allow_requeue, pool,
        executor_pool=executor_pool, schemas=schemas,
        batch_size=batch_size, batch_timeout=batch_timeout,
    )  # fmt: skip
