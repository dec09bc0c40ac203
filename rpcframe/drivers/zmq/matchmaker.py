"""The name service ("matchmaker"): which processes listen on which address.

A server process registers, for each address it listens on, a *record*
(``rpc``/``exchange``/``topic``[/``server``], ``fanout``/``topic``,
``notify``/``exchange``/``topic``) with itself as a *member*: its endpoint,
``tcp://host:port``, prefixed by the pool name for notification listeners.
Clients look records up and send to members.

Two implementations:

* :class:`RedisMatchmaker`: records in Redis sorted sets, each member scored
  with the time it expires (``zmq_target_expire``). A background thread
  refreshes this process's members every ``zmq_target_update`` seconds, so a
  process that died without unregistering drops out within the expiry. Look-ups
  are cached for ``_CACHE_TTL``; while Redis is unreachable clients route from
  the last answer they had, say so in the log once, and every registration is
  written again as soon as Redis answers (it keeps nothing across a restart).
* :class:`StaticMatchmaker`: the servers' endpoints are fixed (the transport
  URL's hosts, or a file). Members of this process are known exactly; every
  other listed endpoint is a candidate for every address, and answers
  ``noroute`` for those it does not serve, so the sender moves on.

Members a client found unreachable are :meth:`Matchmaker.forget`-ten in its
cached answer, until the next look-up asks Redis again.
"""

from __future__ import annotations

import abc
import json
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from rpcframe import exceptions

__all__ = ["Matchmaker", "RedisMatchmaker", "StaticMatchmaker", "member", "split_member"]

LOG = logging.getLogger(__name__)

#: How long a Redis look-up is reused: new servers show up within it.
_CACHE_TTL = 1.0
#: While Redis is down, how often registrations are tried again.
_RETRY_WHILE_DOWN = 1.0


def record_key(*parts: str) -> str:
    return json.dumps(parts, separators=(",", ":"))


def member(endpoint: str, pool: str | None = None) -> str:
    """A record's member: the endpoint, after the pool name for notification pools."""
    return endpoint if pool is None else f"{pool}\x1f{endpoint}"


def split_member(value: str) -> tuple[str | None, str]:
    """(pool, endpoint) of a member; pool None when it has none."""
    pool, sep, endpoint = value.rpartition("\x1f")
    return (pool, endpoint) if sep else (None, value)


class Matchmaker(abc.ABC):
    """Records of who listens where. Thread-safe."""

    #: Whether every member of a record is known (not a candidate to try).
    exact = True
    #: Whether looking up, registering or unregistering may wait on the network.
    blocking = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._mine: dict[str, dict[str, int]] = {}  # record -> member -> local users

    def register(self, record: str, value: str) -> None:
        """Add this process as ``value`` to ``record`` (counted: one per local user)."""
        with self._lock:
            users = self._mine.setdefault(record, {})
            users[value] = users.get(value, 0) + 1
            first = users[value] == 1
        if first:
            self._store(record, value)

    def unregister(self, record: str, value: str) -> None:
        with self._lock:
            users = self._mine.get(record, {})
            left = users.get(value, 0) - 1
            if left > 0:
                users[value] = left
                return
            users.pop(value, None)
            if not users:
                self._mine.pop(record, None)
        self._remove(record, value)

    def mine(self, record: str) -> list[str]:
        with self._lock:
            return list(self._mine.get(record, ()))

    @abc.abstractmethod
    def lookup(self, record: str) -> list[str]:
        """The record's members (possibly from a cache); raise TransportBroken if unknowable."""

    def cached(self, record: str) -> list[str] | None:
        """What :meth:`lookup` would answer without waiting, or None if it would wait."""
        return None if self.blocking else self.lookup(record)

    def forget(self, record: str, value: str) -> None:  # noqa: B027 - most keep no cache
        """A sender found ``value`` unreachable: do not offer it again for a while."""

    @abc.abstractmethod
    def _store(self, record: str, value: str) -> None: ...

    @abc.abstractmethod
    def _remove(self, record: str, value: str) -> None: ...

    def close(self) -> None:  # noqa: B027 - nothing to release by default
        """Unregister everything of this process's and stop; safe twice."""


class StaticMatchmaker(Matchmaker):
    """Fixed server endpoints; exact knowledge of this process's own members.

    "This process's own" covers every node of the process on the same
    endpoints (the thread node and each event loop's): they see each
    other's listeners as a Redis name service would show them.
    """

    _live: ClassVar[list[weakref.ref[StaticMatchmaker]]] = []
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, endpoints: Sequence[str]) -> None:
        super().__init__()
        self.endpoints = list(dict.fromkeys(endpoints))
        self.own: str | None = None
        self.exact = len(self.endpoints) <= 1
        with self._live_lock:
            StaticMatchmaker._live = [ref for ref in self._live if ref() is not None]
            self._live.append(weakref.ref(self))

    def _neighbours(self) -> list[StaticMatchmaker]:
        with self._live_lock:
            found = [ref() for ref in self._live]
        return [m for m in found if m is not None and m.endpoints == self.endpoints]

    def lookup(self, record: str) -> list[str]:
        neighbours = self._neighbours()
        mine = list(dict.fromkeys(value for m in neighbours for value in m.mine(record)))
        owned = {m.own for m in neighbours}
        others = [e for e in self.endpoints if e not in owned]
        notify = record.startswith('["notify"')
        # Other endpoints may or may not serve it: candidates (every pool there).
        return mine + [member(e, "*") if notify else e for e in others]

    def close(self) -> None:
        with self._live_lock:
            StaticMatchmaker._live = [ref for ref in self._live if ref() not in (None, self)]

    def _store(self, record: str, value: str) -> None:
        pass

    def _remove(self, record: str, value: str) -> None:
        pass


def read_hosts_file(path: str) -> list[str]:
    """The endpoints a static hosts file lists (host:port a line)."""
    try:
        with open(path, encoding="utf-8") as lines:
            hosts = [line.split("#", 1)[0].strip() for line in lines]
    except OSError as exc:
        raise exceptions.ConfigurationError(
            f"rpc_zmq_static_hosts_file {path!r} cannot be read: {exc}"
        ) from None
    return [host for host in hosts if host]


class RedisMatchmaker(Matchmaker):
    """Records in Redis, refreshed by a background thread, looked up through a cache."""

    blocking = True

    def __init__(
        self,
        client_factory: Any,
        prefix: str,
        expire: float,
        update: float,
        describe: str,
        errors: tuple[type[BaseException], ...],
    ) -> None:
        super().__init__()
        if update >= expire:
            raise exceptions.ConfigurationError(
                f"zmq_target_update ({update}) must be below zmq_target_expire ({expire})"
            )
        self._client = client_factory()
        self._prefix = prefix
        self._expire = expire
        self._update = update
        self._describe = describe
        self._errors = errors
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._last_probe = 0.0
        self._run_id: str | None = None
        self._down = False
        self._dirty = threading.Event()  # registrations not yet written
        self._stop = threading.Event()
        try:
            self._run_id = self._client.info("server").get("run_id")
        except self._errors as exc:
            self._went_down(exc)
        self._thread = threading.Thread(
            target=self._refresh_loop, name="rpcframe-zmq-matchmaker", daemon=True
        )
        self._thread.start()

    def _key(self, record: str) -> str:
        return f"{self._prefix}:{record}"

    def cached(self, record: str) -> list[str] | None:
        cached = self._cache.get(record)
        if cached is None:
            return None
        now = time.monotonic()
        if now - cached[0] < _CACHE_TTL:
            return cached[1]
        if self._down and now - self._last_probe < _RETRY_WHILE_DOWN:
            return cached[1]  # Redis is down: do not wait for it on every send
        return None

    def lookup(self, record: str) -> list[str]:
        hit = self.cached(record)
        if hit is not None:
            return hit
        now = time.monotonic()
        cached = self._cache.get(record)
        self._last_probe = now
        try:
            found = self._client.zrangebyscore(self._key(record), time.time(), "+inf")
        except self._errors as exc:
            self._went_down(exc)
            if cached is None:
                raise exceptions.TransportBroken(
                    f"the name service ({self._describe}) is unreachable and nothing is "
                    f"cached for {record}: {exc}"
                ) from exc
            return cached[1]
        self._came_back()
        members = [m.decode() if isinstance(m, bytes) else m for m in found]
        self._cache[record] = (now, members)
        return members

    def forget(self, record: str, value: str) -> None:
        # Until the cached answer is renewed: a live member that registers
        # again (a restarted listener) is back in rotation at the next look-up.
        cached = self._cache.get(record)
        if cached is not None:
            self._cache[record] = (cached[0], [m for m in cached[1] if m != value])

    def _store(self, record: str, value: str) -> None:
        self._cache.pop(record, None)
        try:
            self._write([(record, value)])
        except self._errors as exc:
            self._went_down(exc)
            self._dirty.set()  # the refresher writes it when Redis answers

    def _remove(self, record: str, value: str) -> None:
        self._cache.pop(record, None)
        try:
            self._client.zrem(self._key(record), value)
        except self._errors as exc:
            LOG.debug(
                "zmq name service: could not remove %s from %s (%s); it expires", value, record, exc
            )

    def _write(self, pairs: Iterable[tuple[str, str]]) -> None:
        until = time.time() + self._expire
        pipe = self._client.pipeline(transaction=False)
        for record, value in pairs:
            key = self._key(record)
            pipe.zadd(key, {value: until})
            pipe.zremrangebyscore(key, "-inf", time.time())
            pipe.expire(key, int(self._expire) + 1)
        pipe.execute()

    def _refresh_loop(self) -> None:
        while not self._stop.is_set():
            wait = _RETRY_WHILE_DOWN if self._down or self._dirty.is_set() else self._update
            if self._stop.wait(wait):
                return
            with self._lock:
                pairs = [(r, m) for r, users in self._mine.items() for m in users]
            try:
                self._write(pairs)
                run_id = self._client.info("server").get("run_id")
            except self._errors as exc:
                self._went_down(exc)
                continue
            self._dirty.clear()
            # A restart between two refreshes loses every record unnoticed
            # but for Redis's run id: ours are written again either way.
            restarted = self._run_id is not None and run_id != self._run_id
            self._run_id = run_id
            if self._down or restarted:
                LOG.warning(
                    "zmq name service: %s answers again%s; %d records registered again",
                    self._describe,
                    " (it restarted)" if restarted else "",
                    len(pairs),
                )
            self._came_back()

    def _went_down(self, exc: BaseException) -> None:
        if not self._down:
            self._down = True
            LOG.warning(
                "zmq name service: %s is unreachable (%s); routing from the cached records "
                "until it answers",
                self._describe,
                exc,
            )

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            self._dirty.set()  # it may have restarted empty: write everything again

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(10)
        with self._lock:
            pairs = [(r, m) for r, users in self._mine.items() for m in users]
            self._mine.clear()
        try:
            pipe = self._client.pipeline(transaction=False)
            for record, value in pairs:
                pipe.zrem(self._key(record), value)
            pipe.execute()
        except self._errors as exc:
            LOG.debug("zmq name service: could not unregister on close (%s); records expire", exc)
        finally:
            self._client.close()
