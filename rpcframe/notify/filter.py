r"""NotificationFilter: which notifications an endpoint is shown.

An endpoint opts in by having a ``filter_rule`` attribute::

    class InstanceEndpoint:
        filter_rule = rpcframe.NotificationFilter(
            publisher_id=r"^compute\.",
            event_type=r"^compute\.instance\..*\.end$",
            context={"project_id": "^p-42$"},
            payload={"state": "^active$"},
        )

        def info(self, ctxt, publisher_id, event_type, payload, metadata): ...

Every given rule must hold: each is a regular expression matched (with
``re.match``, so anchored at the start) against a string. For ``context``,
``metadata`` and ``payload`` the rules are per key; a key that is missing,
or whose value is not a string, does not match. A notification an endpoint
filters out is still acknowledged: the filter decides what the endpoint
sees, not what the listener keeps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["NotificationFilter"]


def _compile_each(rules: Mapping[str, str] | None) -> dict[str, re.Pattern[str]]:
    return {key: re.compile(pattern) for key, pattern in (rules or {}).items()}


def _matches(value: Any, pattern: re.Pattern[str] | None) -> bool:
    if pattern is None:
        return True
    return isinstance(value, str) and pattern.match(value) is not None


def _matches_each(data: Any, patterns: dict[str, re.Pattern[str]]) -> bool:
    if not patterns:
        return True
    if not isinstance(data, Mapping):
        return False
    return all(key in data and _matches(data[key], p) for key, p in patterns.items())


class NotificationFilter:
    """Regular-expression rules on a notification's fields (see the module docs).

    Invalid expressions raise ``re.error`` when the filter is built.
    """

    def __init__(
        self,
        context: Mapping[str, str] | None = None,
        publisher_id: str | None = None,
        event_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        payload: Mapping[str, str] | None = None,
    ) -> None:
        self._publisher_id = None if publisher_id is None else re.compile(publisher_id)
        self._event_type = None if event_type is None else re.compile(event_type)
        self._context = _compile_each(context)
        self._metadata = _compile_each(metadata)
        self._payload = _compile_each(payload)

    def match(
        self, context: Any, publisher_id: Any, event_type: Any, metadata: Any, payload: Any
    ) -> bool:
        """True when every rule holds for the notification."""
        return (
            _matches(publisher_id, self._publisher_id)
            and _matches(event_type, self._event_type)
            and _matches_each(context, self._context)
            and _matches_each(metadata, self._metadata)
            and _matches_each(payload, self._payload)
        )

    def __repr__(self) -> str:
        rules = []
        if self._publisher_id is not None:
            rules.append(f"publisher_id={self._publisher_id.pattern!r}")
        if self._event_type is not None:
            rules.append(f"event_type={self._event_type.pattern!r}")
        for name in ("context", "metadata", "payload"):
            patterns = getattr(self, f"_{name}")
            if patterns:
                rules.append(f"{name}={ {k: p.pattern for k, p in patterns.items()} }")
        return f"<NotificationFilter {' '.join(rules) or 'everything'}>"
