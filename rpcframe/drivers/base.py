"""The driver interface: the small contract every transport plugin implements.

Drivers move opaque, already-encoded message bodies between addresses. All
meaning (ids, reply routing, timeouts, versions, serialization, remote errors,
call-monitor heartbeats) lives once in the core, so every driver behaves the
same and a new one stays small. A driver is a :class:`Driver` subclass named
under the ``rpcframe.drivers`` entry point; the core builds it as
``DriverClass(conf, url)`` for a :class:`~rpcframe.transport.TransportURL`
whose scheme is the entry point's name.

Drivers translate their backend's exceptions here, at the boundary: nothing
from kombu, pyzmq or the socket layer escapes to users. A driver raises
:class:`~rpcframe.exceptions.TransportDriverError` (with the backend error as
``__cause__``) or one of the specific rpcframe exceptions named below.

The conformance suite in :mod:`rpcframe.testing.contract` checks every
promise made here; a new driver is done when it passes.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.url import TransportURL

__all__ = [
    "Address",
    "Capabilities",
    "Driver",
    "IncomingMessage",
    "Inbox",
    "Listener",
    "driver_options",
]

RPC = "rpc"
NOTIFY = "notify"
REPLY = "reply"
KINDS = (RPC, NOTIFY, REPLY)


@dataclasses.dataclass(frozen=True, slots=True)
class Address:
    """Where a message goes, or what a listener subscribes to.

    ``kind`` is ``"rpc"`` (requests: shared topic queue, ``server`` for one
    server, ``fanout`` for all), ``"notify"`` (``topic`` is
    ``<topic>.<priority>``; stored until a listener takes it) or ``"reply"``
    (``topic`` is an inbox name from :meth:`Driver.open_inbox`).
    """

    exchange: str
    topic: str
    server: str | None = None
    fanout: bool = False
    kind: str = RPC

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Address.kind must be one of {KINDS}, got {self.kind!r}")
        if not self.topic:
            raise ValueError("Address.topic must be a non-empty string")


@dataclasses.dataclass(frozen=True)
class Capabilities:
    """What a driver can do; the core refuses features a driver lacks, clearly.

    :param requeue: an incoming message can be put back for redelivery.
    :param store_and_forward: a message sent to a topic whose queue has no
        listener right now is kept until one listens (queues outlive their
        listeners): what a listener closed without taking is delivered to the
        next, and ``expiry`` applies while a message waits. Brokers do this;
        a brokerless driver delivers only to listeners running at send time.
    :param durable_notifications: notifications sent while no listener runs
        are kept until one does.
    :param pools: notification listeners can share a queue by pool name.
    :param fanout: casts can go to every server on a topic.
    :param mandatory: ``send(mandatory=True)`` reports unroutable messages.
    :param concurrent_poll: a listener may be polled by several threads at
        once, each message going to one of them, and ``close`` wakes them
        all; servers then let every idle worker wait in ``poll``.
    :param lasting_inboxes: an inbox can be missing for a while and come back
        (a broker restarted and its caller has not declared it again yet), so
        a server sends each reply ``mandatory``, waits for the outcome, and
        sends it again while the inbox is missing. Without it an inbox lives
        as long as its caller's listener and no longer (a brokerless driver:
        the inbox is in the caller's process), and a server sends replies with
        ``confirm=False``: once written, the reply is the driver's, which logs
        a reply whose inbox closed, and retrying would not help.
    :param passes_objects: the driver hands in-process objects over beside
        the body: ``send`` takes ``attachments`` (a dict) and the receiving
        :class:`IncomingMessage` has them as its ``attachments`` attribute.
        Only the in-memory fake does, in the lenient mode that matches
        oslo.messaging's fake (see :mod:`rpcframe.leniency`); the core never
        passes ``attachments`` to a driver without it.
    """

    requeue: bool = True
    store_and_forward: bool = True
    durable_notifications: bool = True
    pools: bool = True
    fanout: bool = True
    mandatory: bool = True
    concurrent_poll: bool = False
    lasting_inboxes: bool = True
    passes_objects: bool = False


#: One lock for every message's check-and-set: it is held for two attribute
#: accesses, so sharing it costs nothing measurable, where a lock per message
#: would cost one allocation per message.
_SETTLE_LOCK = threading.Lock()


class IncomingMessage(abc.ABC):
    """One received message. ``ack`` or ``requeue`` it, once.

    The state machine is here so that every driver refuses a second
    settlement the same way (:class:`~rpcframe.exceptions.MessageStateError`).
    A message may be settled after its listener closed; one never settled is
    requeued when the driver closes, so nothing is lost silently.
    """

    __slots__ = ("body", "_settled")

    #: A driver's own reference to this request, or None (most drivers): the
    #: server passes it back as ``reply_ref`` to :meth:`Driver.send` with the
    #: reply that ends the call, so the driver may forget what it kept about
    #: the call on the way (a driver that sets it takes that argument).
    reply_ref: str | None = None

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._settled: str | None = None

    def ack(self) -> None:
        """Tell the transport the message is handled; it will not come back.

        Does not block on the network for long (a best-effort write on
        brokers). Thread-safe. Raises MessageStateError if already settled.
        """
        self._settle("acknowledged")
        self._ack()

    def requeue(self) -> None:
        """Give the message back for redelivery (to this or another listener).

        Raises MessageStateError if already settled; drivers without the
        ``requeue`` capability raise TransportDriverError.
        """
        self._settle("requeued")
        self._requeue()

    @property
    def settled(self) -> bool:
        return self._settled is not None

    def _settle(self, state: str) -> None:
        # Check and set as one step: two threads settling one message at
        # once must not both get past the check.
        with _SETTLE_LOCK:
            settled = self._settled
            if settled is None:
                self._settled = state
        if settled is not None:
            raise exceptions.MessageStateError(f"message already {settled}")

    @abc.abstractmethod
    def _ack(self) -> None: ...

    @abc.abstractmethod
    def _requeue(self) -> None: ...


class Listener(abc.ABC):
    """A subscription to one or more addresses.

    ``poll`` may be called from any thread, by one thread at a time per
    listener (by several at once where the driver declares
    ``concurrent_poll``); ``close`` may be called from any thread at any time.
    """

    @abc.abstractmethod
    def poll(self, timeout: float | None = None) -> IncomingMessage | None:
        """Return the next message, or None after ``timeout`` seconds.

        ``timeout=None`` waits until a message arrives or the listener is
        closed. After :meth:`close` (before or during the wait) it returns
        None at once. Raises TransportDriverError if the transport broke in
        a way the driver could not repair; the listener is then closed.
        Blocks without busy-waiting.
        """

    def pending(self) -> bool:
        """Whether ``poll`` would return a message without waiting (best effort).

        Never blocks. Servers whose workers take turns use it to pass the
        turn on only when there is something to receive. The default, False,
        is always safe.
        """
        return False

    def window(self, messages: int | None) -> None:  # noqa: B027 - optional
        """Take about ``messages`` more messages ahead of ``poll`` (None: no bound).

        Servers call it as their workers come and go: ``messages`` is what
        their free workers can start now (times the batch size of a batch
        listener), so that a server whose workers are all busy leaves new
        messages to the other listeners of its queues. Messages ``poll``
        returned and that are not settled yet do not count. Best effort (a
        driver may round, lag behind or keep one message in hand); never
        blocks on the transport and never raises. The default does nothing:
        a driver without prefetching has nothing to bound.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving; wake a ``poll`` blocked in another thread.

        Messages delivered to this listener that ``poll`` has not returned go
        back to their queues. Messages ``poll`` already returned can still be
        acked or requeued (the driver requeues any left unsettled when it
        closes). Safe to call twice and from any thread; never raises for a
        broken transport.
        """

    def cleanup(self) -> None:
        """Release what the listener holds, once its server has finished (oslo's name).

        Servers call it from ``wait()``, after ``close()``. The default closes
        the listener again, which is safe; drivers with more to release
        override it.
        """
        self.close()


class Inbox(Listener):
    """A listener with a unique address of its own, for replies.

    ``address`` (kind ``"reply"``) is what a caller puts in ``_reply_q``.
    The address stops existing when the inbox closes; a message sent to it
    afterwards is unroutable.
    """

    address: Address


class Driver(abc.ABC):
    """A transport backend. Safe to share between threads.

    :param conf: the ConfigOpts the user gave; a driver registers its own
        option group there and reads options through :func:`driver_options`,
        so that URL query parameters override them.
    :param url: the parsed TransportURL.
    """

    #: What the driver can do; see :class:`Capabilities`.
    #: What this driver can do; an instance may narrow it (the fake in strict mode).
    capabilities: Capabilities = Capabilities()

    def __init__(self, conf: cfg.ConfigOpts, url: TransportURL) -> None:
        self.conf = conf
        self.url = url

    @abc.abstractmethod
    def send(
        self,
        address: Address,
        body: bytes,
        *,
        expiry: float | None = None,
        mandatory: bool = False,
        retry: int | None = None,
        timeout: float | None = None,
        confirm: bool = True,
    ) -> None:
        """Hand ``body`` to the transport for ``address``.

        Blocks until the transport owns the message: on a broker, until the
        broker confirmed it. ``expiry`` is how many seconds the message stays
        deliverable. ``mandatory`` raises MessageUndeliverable when no queue
        takes the message. ``retry`` bounds reconnection attempts, as in
        oslo.messaging (None or -1: forever, 0: none, N: at most N) and ends in
        MessageDeliveryFailure. ``timeout`` bounds the whole send: when it
        passes, MessagingTimeout. ``confirm=False`` lets a driver return once
        the message is written, without waiting for the broker's
        acknowledgement; the core asks for it only for call requests, whose
        reply proves delivery, and never together with ``mandatory``.
        Thread-safe. A repeat sends a second copy. A driver with the
        ``passes_objects`` capability also takes ``attachments``; one whose
        incoming messages carry :attr:`IncomingMessage.reply_ref` also takes
        ``reply_ref`` (given with a call's last reply only).
        """

    @abc.abstractmethod
    def listen(self, addresses: Sequence[Address], *, pool: str | None = None) -> Listener:
        """Subscribe to ``addresses`` and return the listener.

        RPC topic addresses are shared: each message goes to one listener,
        round-robin. Server addresses reach that server; fanout addresses
        reach every listener subscribed at send time. Notification addresses
        with a ``pool`` share one queue per pool name; without one, each
        topic's queue is shared by all listeners of that topic. Raises
        TransportDriverError if the subscription cannot be made.
        """

    @abc.abstractmethod
    def open_inbox(self) -> Inbox:
        """Create a private, uniquely addressed listener for replies."""

    def detached_sender(
        self, address: Address, timeout: float | None = None
    ) -> Callable[[bytes], bool] | None:
        """A way to send best-effort messages to ``address`` from a native OS thread.

        For eventlet-patched processes, where an endpoint that blocks the hub
        (with a call eventlet did not make green) starves every green thread:
        the core sends call-monitor heartbeats through it from a native timer
        thread. Called from an ordinary (green) thread, it may connect first,
        for at most ``timeout`` seconds (then None).
        The function it returns may be called from any OS thread: it writes
        ``body`` at once, without a confirm, never waits on the transport for
        more than a fraction of a second, never raises, and says whether it
        wrote. None (the default) means the driver has no such path; the core
        then sends from a green timer.
        """
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Close every listener and connection. Safe to call twice.

        Afterwards ``send``, ``listen`` and ``open_inbox`` raise
        TransportDriverError.
        """


def driver_options(
    conf: cfg.ConfigOpts,
    group: str,
    opts: Sequence[cfg.Opt],
    query: Mapping[str, str],
    ignore: Iterable[str] = (),
) -> Any:
    """Register ``opts`` under ``group`` and return their values.

    Values come from ``conf`` unless the transport URL's query overrides them
    (``rabbit://host/?heartbeat_timeout_threshold=30``), converted by each
    option's type. An unknown query key or a value of the wrong type raises
    ConfigurationError naming it. ``ignore`` lists keys the driver reads
    itself.
    """
    conf.register_opts(opts, group=group)
    by_name = {opt.dest: opt for opt in opts}
    section = getattr(conf, group)
    values = {name: getattr(section, name) for name in by_name}
    skip = set(ignore)
    for key, raw in query.items():
        if key in skip:
            continue
        opt = by_name.get(key)
        if opt is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise exceptions.ConfigurationError(
                f"unknown transport URL parameter {key!r} for [{group}] (known: {known})"
            )
        try:
            values[key] = opt.type(raw)
        except (ValueError, TypeError) as exc:
            raise exceptions.ConfigurationError(
                f"transport URL parameter {key}={raw!r} is not valid: {exc}"
            ) from None
    return _Options(group, values)


class _Options:
    """Read-only attribute view of resolved option values."""

    _group: str

    def __init__(self, group: str, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
        object.__setattr__(self, "_group", group)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"[{self._group}] options are read-only")

    def __repr__(self) -> str:
        return f"<options [{self._group}]>"
