"""The ``routing`` notifier driver: other drivers chosen per event type and priority.

``[oslo_messaging_notifications] routing_config`` names a YAML file of
groups; in each group, a driver name maps to the rules a notification must
meet to go to that driver (oslo.messaging's format)::

    audit:
        messagingv2:
            accepted_events:
                - compute.instance.*
            accepted_priorities:
                - info
                - error
    debugging:
        log:
            accepted_priorities:
                - debug

Patterns are shell-style (``fnmatch``); priorities compare case-blind. A
driver with no rule gets everything; with both, a notification must meet
both. A driver listed in several groups gets a notification once. Without a
routing file the driver sends nothing.

The file is read when the driver is first used. It needs PyYAML
(``pip install 'rpcframe[routing]'``), an extra because only this driver
reads YAML; without it the first notification raises ConfigurationError
saying what to install.
"""

from __future__ import annotations

import fnmatch
import logging
import threading
from collections.abc import Mapping
from typing import Any, cast

from stevedore import named

from rpcframe import exceptions
from rpcframe.notify import drivers

__all__ = ["RoutingDriver"]

LOG = logging.getLogger(__name__)

_RULES = ("accepted_events", "accepted_priorities")


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise exceptions.ConfigurationError(
            "the routing notification driver needs PyYAML: pip install 'rpcframe[routing]'"
        ) from exc
    return yaml


def _check_groups(path: str, groups: Any) -> dict[str, dict[str, dict[str, list[str]]]]:
    """Refuse a routing file that is not groups of drivers of rules, saying where."""
    if groups is None:
        return {}
    if not isinstance(groups, Mapping):
        raise exceptions.ConfigurationError(f"{path}: expected a mapping of routing groups")
    for group, routes in groups.items():
        if not isinstance(routes, Mapping):
            raise exceptions.ConfigurationError(
                f"{path}: group {group!r} must map driver names to rules"
            )
        for driver, rules in routes.items():
            if rules is None:
                continue
            if not isinstance(rules, Mapping):
                raise exceptions.ConfigurationError(
                    f"{path}: rules for {driver!r} in group {group!r} must be a mapping"
                )
            for key, patterns in rules.items():
                if key not in _RULES:
                    raise exceptions.ConfigurationError(
                        f"{path}: unknown rule {key!r} for {driver!r} in group {group!r} "
                        f"(known: {', '.join(_RULES)})"
                    )
                if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                    raise exceptions.ConfigurationError(
                        f"{path}: {key} for {driver!r} in group {group!r} must be a list of strings"
                    )
    return {g: {d: dict(r or {}) for d, r in routes.items()} for g, routes in groups.items()}


def _accepts(rules: Mapping[str, list[str]], event_type: str, priority: str) -> bool:
    events = rules.get("accepted_events")
    if events is not None and not any(fnmatch.fnmatch(event_type, p) for p in events):
        return False
    priorities = rules.get("accepted_priorities")
    if priorities is not None and not any(fnmatch.fnmatch(priority, p.lower()) for p in priorities):
        return False
    return True


class RoutingDriver(drivers.Driver):
    """Hands each notification to the drivers its routing rules select."""

    def __init__(self, conf: Any, topics: Any, transport: Any) -> None:
        super().__init__(conf, topics, transport)
        self._lock = threading.Lock()
        self._groups: dict[str, dict[str, dict[str, list[str]]]] | None = None
        self._drivers: dict[str, drivers.Driver] = {}

    def _load(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        groups = self._groups
        if groups is not None:
            return groups
        with self._lock:
            if self._groups is None:
                self._groups = self._read()
            return self._groups

    def _read(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        path = self.conf.oslo_messaging_notifications.routing_config
        if not path:
            LOG.warning("The routing notification driver has no routing_config; sending nothing")
            return {}
        yaml = _yaml()
        try:
            with open(path, encoding="utf-8") as stream:
                groups = _check_groups(path, yaml.safe_load(stream))
        except OSError as exc:
            raise exceptions.ConfigurationError(
                f"cannot read routing_config {path}: {exc}"
            ) from exc
        except yaml.YAMLError as exc:
            raise exceptions.ConfigurationError(
                f"routing_config {path} is not YAML: {exc}"
            ) from exc
        names = {name for routes in groups.values() for name in routes}
        names.discard("routing")  # a route back to this driver would loop forever
        manager: named.NamedExtensionManager = named.NamedExtensionManager(
            drivers.NAMESPACE,
            names=sorted(names),
            invoke_on_load=True,
            invoke_args=(self.conf,),
            invoke_kwds={"topics": self.topics, "transport": self.transport},
        )
        loaded: dict[str, drivers.Driver] = {
            ext.name: cast(drivers.Driver, ext.obj) for ext in manager
        }
        missing = sorted(names - set(loaded))
        if missing:
            raise exceptions.ConfigurationError(
                f"routing_config {path} names unknown notification drivers: {', '.join(missing)}"
            )
        self._drivers = loaded
        return groups

    def notify(
        self, ctxt: dict[str, Any], message: Mapping[str, Any], priority: str, retry: Any
    ) -> None:
        groups = self._load()
        event_type = message["event_type"]
        level = priority.lower()
        chosen: dict[str, None] = {}  # ordered and without repeats
        for routes in groups.values():
            for name, rules in routes.items():
                if name in self._drivers and _accepts(rules, event_type, level):
                    chosen[name] = None
        for name in chosen:
            LOG.debug("Routing %r notification to the %r driver", event_type, name)
            self._drivers[name].notify(ctxt, message, priority, retry)
