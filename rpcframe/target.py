"""Target: where a message goes, or what a server or endpoint accepts.

A Target is an immutable value. Calling it returns a copy with some fields
changed, which is how clients and servers derive one target from another::

    base = Target(topic="compute", version="5.0")
    direct = base(server="host-1")
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rpcframe import exceptions, versions

__all__ = ["Target"]

_COPIED = ("exchange", "topic", "namespace", "version", "server", "fanout", "legacy_namespaces")


@dataclasses.dataclass(frozen=True, eq=True, repr=False)
class Target:
    """Identifies the destination of messages, or the messages a server accepts.

    :param exchange: scope for topics; ``None`` means the transport's
        ``control_exchange``.
    :param topic: the name a server listens on and a client sends to.
    :param namespace: endpoints can expose methods in a namespace.
    :param version: ``"MAJOR.MINOR"``; clients send it, endpoints implement it.
    :param server: a client sends to this one server; a server listens on it.
    :param fanout: a cast goes to every server listening on the topic.
    :param legacy_namespaces: further namespaces an endpoint also accepts.
    """

    exchange: str | None = None
    topic: str | None = None
    namespace: str | None = None
    version: str | None = None
    server: str | None = None
    fanout: bool | None = None
    legacy_namespaces: tuple[str | None, ...] | list[str | None] | None = None

    def __post_init__(self) -> None:
        for name in ("exchange", "topic", "namespace", "server"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise exceptions.InvalidTarget(
                    f"Target.{name} must be a string or None, got {type(value).__name__}", self
                )
        if self.version is not None:
            try:
                versions.parse_version(self.version)
            except ValueError as exc:
                raise exceptions.InvalidTarget(f"bad Target.version: {exc}", self) from None
        if self.legacy_namespaces is not None:
            object.__setattr__(self, "legacy_namespaces", tuple(self.legacy_namespaces))

    @property
    def accepted_namespaces(self) -> list[str | None]:
        """The namespace plus the legacy ones: what an endpoint answers to."""
        return [self.namespace, *(self.legacy_namespaces or ())]

    def __call__(self, **kwargs: Any) -> Target:
        """Return a copy with the given fields replaced."""
        unknown = set(kwargs) - set(_COPIED)
        if unknown:
            raise TypeError(f"Target has no field(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **kwargs)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value}"
            for name in ("exchange", "topic", "namespace", "version", "server", "fanout")
            if (value := getattr(self, name))
        )
        return f"<Target {fields}>"

    __str__ = __repr__
