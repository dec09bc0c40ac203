"""Helpers for tests that use the RabbitMQ broker on this machine.

Every broker-backed test calls :func:`require_rabbitmq` (skips locally, fails
in CI when the broker is down). Tests name their queues with a unique prefix
and remove what they leave behind with :func:`delete_queues`, so the shared
broker does not fill up with test queues.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from oslo_config import cfg

from rpcframe import opts
from tests.conftest import require_service

__all__ = [
    "RABBIT_HOST",
    "RABBIT_PORT",
    "RABBIT_URL",
    "conf_for_exchange",
    "delete_exchanges",
    "delete_queues",
    "exchange_properties",
    "queue_properties",
    "require_rabbitmq",
]

RABBIT_HOST = "127.0.0.1"
RABBIT_PORT = 5672
RABBIT_URL = f"rabbit://guest:guest@{RABBIT_HOST}:{RABBIT_PORT}/"


def conf_for_exchange(exchange: str) -> cfg.ConfigOpts:
    """A private ConfigOpts whose ``control_exchange`` is the test's own."""
    conf = cfg.ConfigOpts()
    conf([])
    opts.register_core(conf)
    conf.set_override("control_exchange", exchange)
    return conf


def require_rabbitmq() -> None:
    require_service("RabbitMQ", RABBIT_HOST, RABBIT_PORT)


def fresh_topic(prefix: str) -> Iterator[str]:
    """A topic name of a test's own on RabbitMQ; its queues are deleted afterwards.

    For a fixture to ``yield from``; fails (or skips) at once without the broker.
    """
    require_rabbitmq()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    yield name
    delete_queues(prefixes=(name,))


def rabbitmqctl(*args: str, timeout: float = 120.0) -> str:
    """Run rabbitmqctl; raise CalledProcessError on failure."""
    return subprocess.run(
        ["rabbitmqctl", "-q", *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    ).stdout


def list_queues() -> list[str]:
    if shutil.which("rabbitmqctl") is None:
        return []
    out = rabbitmqctl("list_queues", "--no-table-headers", "name", timeout=60)
    return [line.strip() for line in out.splitlines() if line.strip()]


def _listed(entity: str, prefixes: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``rabbitmqctl list_<entity>``: name -> type, durable, auto_delete, arguments."""
    out = rabbitmqctl(
        f"list_{entity}",
        "--formatter",
        "json",
        "name",
        "type",
        "durable",
        "auto_delete",
        "arguments",
        timeout=60,
    )
    found = {}
    for row in json.loads(out or "[]"):
        if row["name"].startswith(prefixes):
            name = row.pop("name")
            row["arguments"] = {key: value for key, _type, value in row["arguments"]}
            found[name] = row
    return found


def queue_properties(prefixes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """How the broker holds the queues whose names start with a prefix."""
    return _listed("queues", tuple(prefixes))


def exchange_properties(prefixes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """How the broker holds the exchanges whose names start with a prefix."""
    return _listed("exchanges", tuple(prefixes))


@contextlib.contextmanager
def admin_channels() -> Iterator[Callable[[], Any]]:
    """A raw py-amqp connection; yields a factory of fresh channels.

    Each deletion gets its own channel, so one that the broker refuses (and
    closes the channel for) does not stop the others.
    """
    import amqp

    conn = amqp.Connection(
        f"{RABBIT_HOST}:{RABBIT_PORT}", userid="guest", password="guest", connect_timeout=5
    )
    conn.connect()
    try:
        yield conn.channel
    finally:
        with contextlib.suppress(OSError, amqp.exceptions.AMQPError):
            conn.close()


def delete_queues(prefixes: Iterable[str] = (), names: Iterable[str] = ()) -> None:
    """Delete the named queues and every queue whose name starts with a prefix."""
    prefixes = tuple(prefixes)
    doomed = set(names)
    if prefixes:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            doomed.update(q for q in list_queues() if q.startswith(prefixes))
    if doomed:
        _delete("queue_delete", sorted(doomed))


def delete_exchanges(names: Iterable[str] = (), prefixes: Iterable[str] = ()) -> None:
    """Delete the named exchanges and every exchange whose name starts with a prefix."""
    doomed = set(names)
    prefixes = tuple(prefixes)
    if prefixes:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            doomed.update(exchange_properties(prefixes))
    _delete("exchange_delete", sorted(doomed))


def _delete(method: str, names: list[str]) -> None:
    import amqp

    with contextlib.suppress(OSError, amqp.exceptions.AMQPError), admin_channels() as channel:
        for name in names:
            ch = channel()
            with contextlib.suppress(amqp.exceptions.AMQPError):
                getattr(ch, method)(name)
