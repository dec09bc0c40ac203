"""Target: where a message goes, or what a server or endpoint accepts.

A Target is oslo.messaging's: a plain object whose attributes may be
assigned (``target.server = host``), equal to another Target with the same
attributes, and hashed by identity. Calling it returns a copy with some
fields changed, which is how clients and servers derive one target from
another::

    base = Target(topic="compute", version="5.0")
    direct = base(server="host-1")

Nothing is checked when a Target is built, as in oslo: a bad value fails
where it is used (a client sending, a server starting), and
:func:`check_version` says what is wrong with a version there.
"""

from __future__ import annotations

from typing import Any

from rpcframe import exceptions, versions

__all__ = ["Target", "check_version"]

_COPIED = ("exchange", "topic", "namespace", "version", "server", "fanout")


class Target:
    """Identifies the destination of messages, or the messages a server accepts.

    :param exchange: scope for topics; ``None`` means the transport's
        ``control_exchange``.
    :param topic: the name a server listens on and a client sends to.
    :param namespace: endpoints can expose methods in a namespace.
    :param version: ``"MAJOR.MINOR"``; clients send it, endpoints implement it.
    :param server: a client sends to this one server; a server listens on it.
    :param fanout: a cast goes to every server listening on the topic.
    :param legacy_namespaces: further namespaces an endpoint also accepts,
        for renaming a namespace during a rolling upgrade.
    """

    def __init__(
        self,
        exchange: str | None = None,
        topic: str | None = None,
        namespace: str | None = None,
        version: str | None = None,
        server: str | None = None,
        fanout: bool | None = None,
        legacy_namespaces: list[str | None] | None = None,
    ) -> None:
        self.exchange = exchange
        self.topic = topic
        self.namespace = namespace
        self.version = version
        self.server = server
        self.fanout = fanout
        #: The namespace plus the legacy ones: what an endpoint answers to.
        self.accepted_namespaces: list[str | None] = [namespace, *(legacy_namespaces or [])]

    def __call__(self, **kwargs: Any) -> Target:
        """Return a copy with the given fields replaced."""
        for name in _COPIED:
            kwargs.setdefault(name, getattr(self, name))
        return Target(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and vars(self) == vars(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    # Mutable, so hashed by identity (as in oslo.messaging).
    __hash__ = object.__hash__

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value}" for name in _COPIED if (value := getattr(self, name)))
        return f"<Target {fields}>"

    __str__ = __repr__


def check_version(target: Target, what: str = "Target.version") -> None:
    """Raise InvalidTarget if ``target.version`` is set but not ``MAJOR.MINOR``."""
    if target.version is None:
        return
    try:
        versions.parse_version(target.version)
    except (TypeError, ValueError) as exc:
        raise exceptions.InvalidTarget(f"bad {what}: {exc}", target) from None
