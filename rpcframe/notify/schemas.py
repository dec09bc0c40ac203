"""Notification schemas: a JSON Schema per event type, checked at both ends.

A schema describes a notification's payload as it travels (JSON, after the
notifier's serializer). The notifier validates before sending and raises
:class:`~rpcframe.exceptions.ValidationError` naming the event type and the
failing path; nothing is sent. A listener validates on receipt: an invalid
message is logged and acknowledged, never handed to an endpoint. Event types
without a schema are not checked.

Register schemas in code::

    from rpcframe.notify import schemas

    schemas.register("compute.instance.create.end", {
        "type": "object",
        "required": ["instance_id"],
        "properties": {"instance_id": {"type": "string"}},
    })

or from a package, under the ``rpcframe.notify.schemas`` entry point group,
one entry per event type, naming a schema mapping (or a function returning
one)::

    [options.entry_points]
    rpcframe.notify.schemas =
        compute.instance.create.end = mypkg.schemas:INSTANCE_CREATE_END

Checking needs ``jsonschema`` (``pip install 'rpcframe[schemas]'``). It is
an extra because it brings compiled dependencies every service would carry
even when it registers no schema; without it, registering or loading a
schema raises :class:`~rpcframe.exceptions.ConfigurationError` saying what
to install, and nothing else changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from rpcframe import exceptions

__all__ = ["ENTRY_POINT_GROUP", "SchemaRegistry", "default_registry", "register"]

LOG = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "rpcframe.notify.schemas"


def _jsonschema() -> Any:
    try:
        import jsonschema
    except ImportError as exc:
        raise exceptions.ConfigurationError(
            "notification schemas need the jsonschema package: pip install 'rpcframe[schemas]'"
        ) from exc
    return jsonschema


def _compile(event_type: str, schema: Any) -> Any:
    """Check ``schema`` itself and return a validator for it."""
    if not isinstance(schema, Mapping):
        raise exceptions.ConfigurationError(
            f"the schema for {event_type!r} must be a mapping, got {type(schema).__name__}"
        )
    jsonschema = _jsonschema()
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise exceptions.ConfigurationError(
            f"the schema for {event_type!r} is not a valid JSON Schema: {exc.message}"
        ) from None
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


class SchemaRegistry:
    """Schemas by event type, and their validators.

    :param schemas: schemas to register now, by event type.
    :param entry_points: also load the ``rpcframe.notify.schemas`` entry
        points (once, on first use). A schema registered in code replaces an
        entry point's for the same event type.

    Safe to share between threads.
    """

    def __init__(
        self, schemas: Mapping[str, Mapping[str, Any]] | None = None, *, entry_points: bool = True
    ) -> None:
        self._lock = threading.Lock()
        self._validators: dict[str, Any] = {}
        self._schemas: dict[str, Mapping[str, Any]] = {}
        self._entry_points_loaded = not entry_points
        for event_type, schema in (schemas or {}).items():
            self.register(event_type, schema)

    def register(self, event_type: str, schema: Mapping[str, Any]) -> None:
        """Check ``schema`` and use it for ``event_type`` from now on.

        Raises ConfigurationError if the schema is not valid JSON Schema or
        jsonschema is not installed.
        """
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event_type must be a non-empty string, got {event_type!r}")
        validator = _compile(event_type, schema)
        with self._lock:
            self._schemas[event_type] = schema
            self._validators[event_type] = validator

    def unregister(self, event_type: str) -> None:
        """Stop checking ``event_type``; nothing happens if it had no schema."""
        with self._lock:
            self._schemas.pop(event_type, None)
            self._validators.pop(event_type, None)

    def get(self, event_type: str) -> Mapping[str, Any] | None:
        """The schema for ``event_type``, or None."""
        self.load()
        return self._schemas.get(event_type)

    def event_types(self) -> list[str]:
        self.load()
        return sorted(self._schemas)

    def load(self) -> None:
        """Load the entry points now (once), so that a broken one fails here.

        Notifiers and listeners call this when they are built.
        """
        if self._entry_points_loaded:
            return
        with self._lock:
            if self._entry_points_loaded:
                return
            found = self._from_entry_points()
            for event_type, (schema, validator) in found.items():
                # Code registration (possibly already made) wins over packages.
                if event_type not in self._schemas:
                    self._schemas[event_type] = schema
                    self._validators[event_type] = validator
            self._entry_points_loaded = True

    @staticmethod
    def _from_entry_points() -> dict[str, tuple[Mapping[str, Any], Any]]:
        found: dict[str, tuple[Mapping[str, Any], Any]] = {}
        origin: dict[str, str] = {}
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in origin:
                LOG.warning(
                    "Two schemas for %r (%s and %s); using the first",
                    ep.name,
                    origin[ep.name],
                    ep.value,
                )
                continue
            try:
                schema = ep.load()
            except Exception as exc:
                raise exceptions.ConfigurationError(
                    f"cannot load the schema for {ep.name!r} from {ep.value}: {exc}"
                ) from exc
            if callable(schema):
                schema = schema()
            found[ep.name] = (schema, _compile(ep.name, schema))
            origin[ep.name] = ep.value
        return found

    def validate(self, event_type: str, payload: Any) -> None:
        """Raise ValidationError if ``payload`` does not match ``event_type``'s schema.

        ``payload`` is the JSON form (what travels). Does nothing when the
        event type has no schema.
        """
        if not self._entry_points_loaded:
            self.load()
        validator = self._validators.get(event_type)
        if validator is None:
            return
        errors = list(validator.iter_errors(payload))
        if not errors:
            return
        error = _jsonschema().exceptions.best_match(errors)
        raise exceptions.ValidationError(event_type, tuple(error.absolute_path), error.message)

    def __contains__(self, event_type: object) -> bool:
        self.load()
        return event_type in self._schemas

    def __repr__(self) -> str:
        return f"<SchemaRegistry {len(self._schemas)} event types>"


#: The registry notifiers and listeners use unless given another.
default_registry = SchemaRegistry()


def register(event_type: str, schema: Mapping[str, Any]) -> None:
    """Register ``schema`` for ``event_type`` in :data:`default_registry`."""
    default_registry.register(event_type, schema)
