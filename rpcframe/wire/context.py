"""The request context inside a message: flattened as ``_context_<key>`` entries.

oslo.messaging does not nest the context: each key of the serialized context
becomes a top-level ``_context_<key>`` entry of the request or notification,
beside the other fields. This module packs and unpacks those entries; it
knows nothing of envelopes or message kinds and imports nothing else from
:mod:`rpcframe.wire`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CONTEXT_PREFIX", "pack_context", "unpack_context"]

CONTEXT_PREFIX = "_context_"


def pack_context(message: dict[str, Any], context: Any) -> None:
    """Flatten a serialized context into ``_context_<key>`` entries of ``message``."""
    if context is None:
        return
    if not isinstance(context, Mapping):
        if hasattr(context, "to_dict"):
            context = context.to_dict()
        else:
            raise TypeError(
                f"a request context must be a dict or have to_dict(), got "
                f"{type(context).__name__}; pass a Serializer that converts it"
            )
    for key, value in context.items():
        message[CONTEXT_PREFIX + key] = value


def unpack_context(message: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the ``_context_<key>`` entries of a message into a dict."""
    n = len(CONTEXT_PREFIX)
    return {k[n:]: v for k, v in message.items() if k.startswith(CONTEXT_PREFIX)}
