"""Serializers: how request contexts and values become JSON-able and back.

A serializer is what a service passes to clients, servers and notifiers to
turn its own objects (versioned objects, request contexts) into primitives on
the way out and back on the way in. :func:`to_primitive` is the conversion the
wire format applies to anything JSON cannot hold natively (datetimes, UUIDs,
sets...), the same conversions oslo.messaging applies, so both sides agree.
"""

from __future__ import annotations

import abc
import datetime
import decimal
import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "JsonPayloadSerializer",
    "NoOpSerializer",
    "RequestContextSerializer",
    "Serializer",
    "to_primitive",
]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_DATE_FORMAT = "%Y-%m-%d"
_AS_STRING = (
    uuid.UUID,
    decimal.Decimal,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
)
_MAX_DEPTH = 3


class Serializer(abc.ABC):
    """Converts entities and contexts to primitives for the wire, and back."""

    @abc.abstractmethod
    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Return a JSON-able form of ``entity``."""

    @abc.abstractmethod
    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        """Rebuild an entity from its primitive form."""

    @abc.abstractmethod
    def serialize_context(self, ctxt: Any) -> Any:
        """Return the context as a dict of JSON-able values."""

    @abc.abstractmethod
    def deserialize_context(self, ctxt: Any) -> Any:
        """Rebuild a context from the dict a peer sent."""


class NoOpSerializer(Serializer):
    """Passes entities and contexts through unchanged."""

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return entity

    def serialize_context(self, ctxt: Any) -> Any:
        return ctxt

    def deserialize_context(self, ctxt: Any) -> Any:
        return ctxt


class JsonPayloadSerializer(NoOpSerializer):
    """Converts entities to primitives, including objects through their ``__dict__``."""

    @staticmethod
    def serialize_entity(context: Any, entity: Any) -> Any:  # type: ignore[override]
        return to_primitive(entity, convert_instances=True)


class RequestContextSerializer(Serializer):
    """Sends a request-context object as its ``to_dict()`` and rebuilds it on receipt.

    :param base: serializer for the entities (default: pass them through).
    :param context_class: a class with ``from_dict`` (such as oslo.context's
        ``RequestContext``) used to rebuild received contexts; without one the
        endpoint receives the plain dict.
    """

    def __init__(self, base: Serializer | None = None, context_class: Any = None) -> None:
        self._base = base or NoOpSerializer()
        self._context_class = context_class

    def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.serialize_entity(ctxt, entity)

    def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
        return self._base.deserialize_entity(ctxt, entity)

    def serialize_context(self, ctxt: Any) -> Any:
        if ctxt is None:
            return {}
        return ctxt.to_dict() if hasattr(ctxt, "to_dict") else dict(ctxt)

    def deserialize_context(self, ctxt: Any) -> Any:
        if self._context_class is None:
            return ctxt
        return self._context_class.from_dict(ctxt)


def to_primitive(value: Any, convert_instances: bool = False, _level: int = 0) -> Any:
    """Return ``value`` as JSON-able primitives.

    Datetimes become ``'%Y-%m-%dT%H:%M:%S.%f'`` strings, dates ``'%Y-%m-%d'``,
    UUIDs, decimals and IP addresses strings, bytes are decoded as UTF-8,
    mappings dicts and other iterables lists. With ``convert_instances`` an
    object becomes its ``__dict__``. Anything else raises TypeError naming
    its type: silently sending ``str(obj)`` would hide a bug.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError(
                "bytes that are not UTF-8 cannot be sent; encode them (base64, say) first"
            ) from None
    if isinstance(value, datetime.datetime):
        return value.strftime(_TIME_FORMAT)
    if isinstance(value, datetime.date):
        return value.strftime(_DATE_FORMAT)
    if isinstance(value, _AS_STRING):
        return str(value)
    if isinstance(value, BaseException):
        return repr(value)
    if _level > _MAX_DEPTH and not isinstance(value, (Mapping, list, tuple)):
        return None
    if isinstance(value, Mapping):
        return {
            to_primitive(k, convert_instances, _level): to_primitive(v, convert_instances, _level)
            for k, v in value.items()
        }
    if hasattr(value, "items") and callable(value.items):
        return to_primitive(dict(value.items()), convert_instances, _level + 1)
    if isinstance(value, Iterable) and not hasattr(value, "read"):
        return [to_primitive(v, convert_instances, _level) for v in value]
    if convert_instances and hasattr(value, "__dict__"):
        return to_primitive(vars(value), convert_instances, _level + 1)
    raise TypeError(
        f"a value of type {type(value).__module__}.{type(value).__qualname__} cannot be "
        "sent as JSON; convert it first or give the client a Serializer"
    )
