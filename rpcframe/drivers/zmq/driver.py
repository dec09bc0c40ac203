"""The ZeroMQ driver (``zmq://``, ``zmq+redis://``): brokerless RPC and notifications.

A driver is a handle on its process's :class:`~rpcframe.drivers.zmq.node.Node`
(shared by every driver on the same URL and options) and the name service.
It turns addresses into name-service records (:mod:`.routing`), looks up
the processes listening on them (:mod:`.matchmaker`), and hands the node one
:class:`~rpcframe.drivers.zmq.node.Outgoing` per process to reach:

* a topic: one of its servers, round-robin (the next one when a server
  answers that nothing listens there any more, or cannot be reached);
* a server: that server's process; a fanout: every process with a server
  of the topic; a notification: one listener process per pool;
* a reply: the inbox's process, named in the inbox's address.

``send`` returns when every process it sent to acknowledged the message:
what "accepted" means here is "in the mailbox of a listener of the address
in a running server process" (never "written to my socket"). A call
request (``confirm=False``) returns once written: its reply proves
delivery, and a call that cannot get there is answered with an error
reply by the node. Nothing waits
in the transport for a listener that is not running, which the capabilities
say (no ``store_and_forward``, no ``durable_notifications``), unless
``zmq_notification_store = redis`` keeps notifications in Redis streams
(:mod:`.store`): then a notification is "accepted" once Redis has it.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from oslo_config import cfg

from rpcframe import exceptions
from rpcframe.drivers import base
from rpcframe.drivers.zmq import errors, frames, node, options, routing, security, store
from rpcframe.drivers.zmq.listener import ZmqListener
from rpcframe.drivers.zmq.matchmaker import (
    Matchmaker,
    RedisMatchmaker,
    StaticMatchmaker,
    member,
    read_hosts_file,
    split_member,
)

__all__ = ["ZmqDriver"]

LOG = logging.getLogger(__name__)

_REDIS_NAMES = frozenset(opt.dest for opt in options.redis_opts)
_ZMQ_NAMES = frozenset(opt.dest for opt in options.zmq_opts)


class _Batch:
    """The outgoing messages of one ``send``; done when each has an outcome.

    The sender waits for it reading the node's sockets itself when it can
    (:meth:`node.Node.read_for`: ``reader``, ``nudge``, :meth:`ready` and
    truth are what that asks of a waiter), else on an event, made only
    then: most sends (a call's request, a reply) are done once written.
    """

    __slots__ = ("left", "outcomes", "reader", "nudge", "_done", "_event", "_lock")

    def __init__(self, count: int) -> None:
        self.left = count
        self.outcomes: list[node.Outgoing] = []
        self.reader: int | None = None
        self.nudge: Any = None
        self._done = False
        self._event: threading.Event | None = None
        self._lock = threading.Lock()

    def finished(self, outgoing: node.Outgoing) -> None:
        with self._lock:
            self.outcomes.append(outgoing)
            self.left -= 1
            last = self.left == 0
            if last:
                self._done = True
                event = self._event
        if last:
            if event is not None:
                event.set()
            nudge = self.nudge
            if nudge is not None:
                nudge()  # the sender reads the sockets: wake it (a no-op from its own thread)

    def ready(self) -> bool:
        return self._done

    def __bool__(self) -> bool:
        # Finished, the sender is likely to send again soon: the node keeps
        # the reading role free for it a moment rather than hand it on.
        return self._done

    def wait(self, reader: node.Node, seconds: float) -> bool:
        """Whether every message had its outcome within ``seconds``."""
        if self._done:
            return True
        deadline = time.monotonic() + seconds
        reader.read_for(self, deadline, candidate=False)
        with self._lock:
            if self._done:
                return True
            self._event = event = threading.Event()
        return event.wait(max(0.0, deadline - time.monotonic()))


class ZmqRoutes:
    """What the thread and asyncio ZeroMQ drivers share: options, name service and routing.

    Everything here is free of waiting: looking a record up, which may need
    the name service, is the driver's own business (:meth:`_groups` takes
    what the look-up found).
    """

    capabilities = base.Capabilities(
        requeue=True,
        store_and_forward=False,
        durable_notifications=False,
        pools=True,
        fanout=True,
        mandatory=True,
        concurrent_poll=True,
        lasting_inboxes=False,
    )

    _opts: Any
    _turns: dict[str, int]
    _lock: threading.Lock
    _store: store.NotificationStore | None

    def _settings(self, conf: cfg.ConfigOpts, url: Any) -> tuple[node.Settings, Any]:
        """The node settings and the name service factory the URL and options give.

        Sets up what every driver keeps: the options, and the notification
        store when ``zmq_notification_store`` asks for one.
        """
        query = dict(url.query)
        zmq_opts = base.driver_options(
            conf, options.ZMQ_GROUP, options.zmq_opts, query, ignore=_REDIS_NAMES
        )
        redis_opts = base.driver_options(
            conf, options.REDIS_GROUP, options.redis_opts, query, ignore=_ZMQ_NAMES
        )
        self._opts = zmq_opts
        curve = security.load_curve(
            zmq_opts.zmq_curve_server_key_file,
            zmq_opts.zmq_curve_client_key_file,
            zmq_opts.zmq_curve_authorized_keys_dir,
        )
        make_matchmaker, matchmaker_key, static = self._matchmaker(url, zmq_opts, redis_opts)
        if not static.exact:
            # Pools split across processes cannot be told apart without records.
            self.capabilities = dataclasses.replace(self.capabilities, pools=False)
        settings = node.Settings(
            bind_address=zmq_opts.rpc_zmq_bind_address,
            host=zmq_opts.rpc_zmq_host,
            min_port=zmq_opts.rpc_zmq_min_port,
            max_port=zmq_opts.rpc_zmq_max_port,
            port_retries=zmq_opts.rpc_zmq_bind_port_retries,
            static_binds=tuple(static.endpoints),
            linger=zmq_opts.zmq_linger,
            heartbeat_interval=zmq_opts.zmq_heartbeat_interval,
            heartbeat_timeout=zmq_opts.zmq_heartbeat_timeout,
            connect_timeout=zmq_opts.rpc_zmq_connect_timeout,
            ack_timeout=zmq_opts.rpc_ack_timeout_base,
            copy_window=zmq_opts.rpc_zmq_connect_timeout
            + zmq_opts.rpc_ack_timeout_base * (zmq_opts.rpc_retry_attempts + 1),
            curve=curve,
            matchmaker_key=matchmaker_key,
        )
        self._lock = threading.Lock()
        self._turns = {}
        self._store = None
        if zmq_opts.zmq_notification_store == "redis":
            hosts = [h for h in url.hosts if h.hostname] if url.transport == "zmq+redis" else []
            client, describe, _ = self._redis(hosts, redis_opts)
            self._store = store.NotificationStore(
                client,
                redis_opts.key_prefix,
                zmq_opts.zmq_notification_stream_length,
                zmq_opts.zmq_notification_claim_after,
                describe,
                errors.REDIS_ERRORS,
            )
            self.capabilities = dataclasses.replace(
                self.capabilities, durable_notifications=True, pools=True
            )
        return settings, make_matchmaker

    @staticmethod
    def _matchmaker(url: Any, zmq_opts: Any, redis_opts: Any) -> tuple[Any, Any, Any]:
        """(factory, identity, static view) of the name service the URL and options name."""
        transport = url.transport or "zmq"
        hosts = [h for h in url.hosts if h.hostname]
        kind = "redis" if transport == "zmq+redis" else zmq_opts.rpc_zmq_matchmaker
        if transport == "zmq" and hosts:
            kind = "static"
        if kind == "static":
            if hosts:
                endpoints = [f"tcp://{h.hostname}:{h.port}" for h in hosts if h.port]
                if len(endpoints) != len(hosts):
                    raise exceptions.ConfigurationError(
                        "a static zmq:// URL lists the servers' host:port; a host has no port"
                    )
            elif zmq_opts.rpc_zmq_static_hosts_file:
                endpoints = [
                    f"tcp://{h}" for h in read_hosts_file(zmq_opts.rpc_zmq_static_hosts_file)
                ]
            else:
                endpoints = []  # this process only
            static = StaticMatchmaker(endpoints)
            return (lambda: StaticMatchmaker(endpoints)), ("static", tuple(endpoints)), static
        client, describe, key = ZmqRoutes._redis(hosts, redis_opts)

        def make() -> Matchmaker:
            return RedisMatchmaker(
                client,
                redis_opts.key_prefix,
                float(zmq_opts.zmq_target_expire),
                float(zmq_opts.zmq_target_update),
                describe,
                errors.REDIS_ERRORS,
            )

        return make, key, StaticMatchmaker([])

    @staticmethod
    def _redis(hosts: list[Any], redis_opts: Any) -> tuple[Any, str, tuple[Any, ...]]:
        """(client factory, description, identity) of the Redis the URL's hosts or options name."""
        host = hosts[0].hostname if hosts else redis_opts.host
        port = (hosts[0].port if hosts else None) or redis_opts.port
        password = (hosts[0].password if hosts else None) or redis_opts.password or None
        sentinels = [] if hosts else list(redis_opts.sentinel_hosts)
        timeout = redis_opts.socket_timeout / 1000
        describe = (
            f"Redis Sentinel {','.join(sentinels)} ({redis_opts.sentinel_group_name})"
            if sentinels
            else f"Redis at {host}:{port}"
        )

        def client() -> Any:
            import redis
            import redis.backoff
            import redis.retry
            import redis.sentinel

            no_retry = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
            if sentinels:
                pairs = [(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in sentinels]
                sentinel = redis.sentinel.Sentinel(pairs, socket_timeout=timeout)
                return sentinel.master_for(
                    redis_opts.sentinel_group_name,
                    socket_timeout=timeout,
                    password=password,
                    db=redis_opts.db,
                    retry=no_retry,
                )
            return redis.Redis(
                host=host,
                port=port,
                password=password,
                db=redis_opts.db,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=no_retry,
            )

        key = ("redis", host, port, tuple(sentinels), redis_opts.db, redis_opts.key_prefix)
        return client, describe, key

    # -- sending ------------------------------------------------------------

    def _check_send(self, body: bytes) -> None:
        if self._closed:
            raise errors.closed()
        if not isinstance(body, bytes):
            raise TypeError(f"a message body must be bytes, got {type(body).__name__}")

    def _outgoing(
        self,
        address: base.Address,
        body: bytes,
        groups: list[tuple[str, list[str]]],
        record: str,
        retry: int | None,
        timeout: float | None,
        confirm: bool,
        expiry: float | None,
        on_done: Any,
        answers: str | None = None,
    ) -> tuple[list[node.Outgoing], float]:
        """The messages to hand the node, one per group, and the time the send may take."""
        opts = self._opts
        attempts = opts.rpc_retry_attempts if retry is None or retry < 0 else retry
        if timeout is None:
            timeout = opts.rpc_zmq_connect_timeout + opts.rpc_ack_timeout_base * (attempts + 1)
        deadline = time.monotonic() + timeout
        is_call = not confirm and address.kind == base.RPC
        outgoing = [
            node.Outgoing(
                frames.Header(
                    frames.new_msg_id(),
                    address.kind,
                    address.exchange,
                    address.topic,
                    address.server or "",
                    address.fanout,
                    pool,
                    quiet=not confirm,
                    answers=answers or "",
                ),
                body,
                candidates,
                record,
                attempts,
                deadline,
                is_call,
                expiry,
                on_done,
            )
            for pool, candidates in groups
        ]
        return outgoing, timeout

    @staticmethod
    def _record(address: base.Address) -> str:
        return routing.record_of(
            address.kind, address.exchange, address.topic, address.server, address.fanout
        )

    @staticmethod
    def _inbox_group(address: base.Address) -> list[tuple[str, list[str]]]:
        endpoint = routing.endpoint_of_inbox(address.topic)
        return [("", [endpoint])] if endpoint else []

    def _groups(
        self, address: base.Address, record: str, found: list[str]
    ) -> list[tuple[str, list[str]]]:
        """(pool, members to try in turn) for each process group the message must reach."""
        if not found:
            return []
        if address.kind == base.NOTIFY:
            pools: dict[str, list[str]] = {}
            spread = []
            for value in found:
                pool, _ = split_member(value)
                if pool == "*":  # a static peer: each gets it, for whatever pools it has
                    spread.append(("*", [value]))
                else:
                    pools.setdefault(pool or "", []).append(value)
            return [
                (pool, self._rotate(f"{record}|{pool}", ms)) for pool, ms in pools.items()
            ] + spread
        if address.fanout:
            return [("", [value]) for value in found]
        return [("", self._rotate(record, found))]

    def _rotate(self, key: str, members: list[str]) -> list[str]:
        with self._lock:
            turn = self._turns[key] = (self._turns.get(key, -1) + 1) % len(members)
        return members[turn:] + members[:turn]

    def _nobody(self, address: base.Address, body: bytes, mandatory: bool, confirm: bool) -> None:
        where = f"{address.exchange!r}/{address.topic!r}" + (
            f" server {address.server!r}" if address.server else ""
        )
        if address.kind == base.NOTIFY and not mandatory:
            LOG.info(
                "ZeroMQ: no listener for notifications on %s: the notification is dropped "
                "(this transport does not store them)",
                where,
            )
            return
        if address.kind == base.RPC and not confirm and not mandatory:
            LOG.warning(
                "ZeroMQ: no server listens on %s: the call cannot be delivered and will time out",
                where,
            )
            return
        why = (
            "the inbox address is not a ZeroMQ inbox"
            if address.kind == base.REPLY
            else f"no process listens on {where} (name service: {self._describe()})"
        )
        raise errors.undeliverable(address.exchange, address.topic, body, why)

    def _describe(self) -> str:
        matchmaker = self._node.matchmaker
        if isinstance(matchmaker, RedisMatchmaker):
            return "redis"
        return "static " + (",".join(getattr(matchmaker, "endpoints", [])) or "(this process)")

    def _outcome(
        self, address: base.Address, body: bytes, outcomes: list[node.Outgoing], mandatory: bool
    ) -> None:
        failed = [o.error for o in outcomes if o.error is not None]
        delivered = sum(1 for o in outcomes if o.status == frames.OK)
        if address.fanout or address.kind == base.NOTIFY:
            if failed and not delivered:
                raise failed[0]
            for error in failed:
                LOG.warning(
                    "ZeroMQ: one process of %s did not get the message: %s", address.topic, error
                )
            if delivered:
                return
            if address.kind == base.NOTIFY and not mandatory:
                LOG.info("ZeroMQ: no listener took the notification on %s: dropped", address.topic)
                return
        elif failed:
            raise failed[0]
        elif delivered:
            return
        raise errors.undeliverable(
            address.exchange,
            address.topic,
            body,
            "no live process listens on it: "
            + "; ".join(sorted({o.reason for o in outcomes if o.reason})),
        )

    # -- receiving ----------------------------------------------------------

    @staticmethod
    def _slots(
        addresses: Sequence[base.Address], pool: str | None
    ) -> tuple[list[str], list[tuple[str, str | None]]]:
        """The local slots a listener of ``addresses`` takes, and the records it registers."""
        slots: list[str] = []
        records: list[tuple[str, str | None]] = []
        for address in addresses:
            if address.kind == base.REPLY:
                raise ValueError("reply addresses come from open_inbox(), not listen()")
            record = ZmqRoutes._record(address)
            if address.kind == base.NOTIFY:
                slots.append(routing.slot(record, pool or ""))
                records.append((record, pool or ""))
            else:
                slots.append(record)
                records.append((record, None))
        return slots, records

    def _stream_keys(
        self, addresses: Sequence[base.Address], pool: str | None
    ) -> tuple[list[str], str] | None:
        """The streams and group a listener of ``addresses`` reads from the notification
        store; None when it listens through the node (no store, or no notifications)."""
        if self._store is None or all(a.kind != base.NOTIFY for a in addresses):
            return None
        return store.stream_keys(self._store, addresses, pool)

    @staticmethod
    def _inbox_slots(endpoint: str) -> tuple[list[str], base.Address]:
        name = routing.inbox_name(endpoint)
        address = base.Address("", name, kind=base.REPLY)
        return [routing.record_of(base.REPLY, "", name, None, False)], address

    _node: node.Node
    _closed: bool


class ZmqDriver(ZmqRoutes, base.Driver):
    """See the module documentation."""

    def __init__(self, conf: cfg.ConfigOpts, url: Any) -> None:
        super().__init__(conf, url)
        settings, make_matchmaker = self._settings(conf, url)
        with errors.mapped("starting the ZeroMQ node"):
            self._node = node.acquire(settings, make_matchmaker)
        self._closed = False
        self._listeners: weakref.WeakSet[ZmqListener] = weakref.WeakSet()
        self._registrations: dict[int, list[tuple[str, str]]] = {}
        self._release = weakref.finalize(self, node.release, self._node)

    def send(
        self,
        address: base.Address,
        body: bytes,
        *,
        expiry: float | None = None,
        mandatory: bool = False,
        retry: int | None = None,
        timeout: float | None = None,
        confirm: bool = True,
        reply_ref: str | None = None,
    ) -> None:
        self._check_send(body)
        if self._store is not None and address.kind == base.NOTIFY:
            self._store.add(address, body)
            return
        record = self._record(address)
        if address.kind == base.REPLY:
            groups = self._inbox_group(address)
        else:
            with errors.mapped(f"looking up {address.topic!r} in the name service"):
                groups = self._groups(address, record, self._node.matchmaker.lookup(record))
        if not groups:
            self._nobody(address, body, mandatory, confirm)
            return
        batch = _Batch(len(groups))
        outgoing, timeout = self._outgoing(
            address, body, groups, record, retry, timeout, confirm, expiry, batch.finished,
            reply_ref,
        )  # fmt: skip
        self._node.send(outgoing)
        if not batch.wait(self._node, timeout + 1.0):
            raise exceptions.MessagingTimeout(
                f"sending to {address.topic!r} did not finish in {timeout} s", timeout=timeout
            )
        self._outcome(address, body, batch.outcomes, mandatory)

    def listen(
        self, addresses: Sequence[base.Address], *, pool: str | None = None
    ) -> base.Listener:
        slots, records = self._slots(addresses, pool)
        streams = self._stream_keys(addresses, pool)
        if self._store is None or streams is None:
            return self._subscribe(slots, records)
        with self._lock:
            if self._closed:
                raise errors.closed()
        listener = store.StoredZmqListener(slots, self._unsubscribe, self._node.hand_over)
        with errors.mapped("joining the notification store"):
            listener.start_reading(self._store, *streams)
        with self._lock:
            self._listeners.add(listener)
        return listener

    def open_inbox(self) -> base.Inbox:
        with errors.mapped("opening the ZeroMQ listening socket"):
            endpoint = self._node.listen_endpoint()
        slots, address = self._inbox_slots(endpoint)
        return self._subscribe(slots, [], address)

    def _subscribe(
        self,
        slots: list[str],
        records: list[tuple[str, str | None]],
        address: base.Address | None = None,
    ) -> ZmqListener:
        with self._lock:
            if self._closed:
                raise errors.closed()
        with errors.mapped("opening the ZeroMQ listening socket"):
            endpoint = self._node.listen_endpoint()
        registrations = [(record, member(endpoint, pool)) for record, pool in records]
        listener = ZmqListener(
            slots,
            self._unsubscribe,
            self._node.hand_over,
            address,
            self._node.read_for,
        )
        with errors.mapped("registering in the name service"):
            self._node.subscribe(listener, registrations)
        with self._lock:
            self._listeners.add(listener)
            self._registrations[id(listener)] = registrations
        return listener

    def _unsubscribe(self, listener: ZmqListener) -> None:
        with self._lock:
            registrations = self._registrations.pop(id(listener), [])
        self._node.unsubscribe(listener, registrations)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            listeners = list(self._listeners)
        for listener in listeners:
            listener.close()
        if self._store is not None:
            self._store.close()
        self._release()
