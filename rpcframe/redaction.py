"""What of a context leaves the process with a notification, and what never does.

Notifications are broadcast to whoever listens, often other teams' tools, so
credentials must not ride along. A context goes through three steps, the
first two in the notifier (in oslo.messaging's order, so a serializer sees
what oslo's would), the last where it is put on the wire:

1. :func:`sanitize_context`: ``None`` becomes ``{}``; an object with
   ``redacted_copy()`` (oslo.context's ``RequestContext``) is replaced by
   that copy, which omits its tokens; a dict is copied without its secret
   keys; anything else cannot be redacted and is left out (logged).
2. The notifier's serializer converts what is left (``serialize_context``);
   drivers are handed the result as it is, as oslo.messaging's are.
3. :func:`context_to_send`: an object becomes its ``to_dict()`` (one without
   it is left out, logged), and from that dict, at every depth, every key
   whose lower-cased name contains one of :data:`SECRET_WORDS` is removed.

A plain dict context, as ``{"user_id": ..., "request_id": ...,
"auth_token": ...}``, thus arrives as ``{"user_id": ..., "request_id":
...}`` (oslo.messaging drops a plain dict context altogether; keeping it
minus its secrets is what listeners expect). Values are never inspected,
only key names: put secrets under names that say so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = [
    "SECRET_WORDS",
    "context_to_send",
    "is_secret_key",
    "mask_secrets",
    "sanitize_context",
    "strip_secrets",
]

LOG = logging.getLogger(__name__)

#: A key whose lower-cased name contains one of these is a secret.
SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "secret",
    "credential",
    "private_key",
    "api_key",
    "apikey",
    "auth_key",
    "authorization",
)

MASK = "***"


def is_secret_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def strip_secrets(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` without secret keys, at every depth of nested mappings."""
    return {
        key: strip_secrets(value) if isinstance(value, Mapping) else value
        for key, value in data.items()
        if not is_secret_key(key)
    }


def mask_secrets(data: Any) -> Any:
    """A copy of ``data`` with secret keys' values replaced by ``***`` (for logs)."""
    if isinstance(data, Mapping):
        return {
            key: MASK if is_secret_key(key) else mask_secrets(value) for key, value in data.items()
        }
    if isinstance(data, (list, tuple)):
        return [mask_secrets(item) for item in data]
    return data


def sanitize_context(ctxt: Any) -> Any:
    """The context a notifier may hand on; see the module documentation."""
    if ctxt is None:
        return {}
    if isinstance(ctxt, Mapping):
        return strip_secrets(ctxt)
    redact = getattr(ctxt, "redacted_copy", None)
    if callable(redact):
        return redact()
    if callable(getattr(ctxt, "to_dict", None)):
        return ctxt
    LOG.warning(
        "A %s context cannot be redacted (no redacted_copy() or to_dict()); "
        "sending the notification without it",
        type(ctxt).__name__,
    )
    return {}


def context_to_send(context: Any) -> dict[str, Any]:
    """The serialized context as a dict without secret keys, for the wire."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        to_dict = getattr(context, "to_dict", None)
        if not callable(to_dict):
            LOG.warning(
                "A %s context cannot be sent with a notification (no to_dict()); "
                "sending the notification without it",
                type(context).__name__,
            )
            return {}
        context = to_dict()
    return strip_secrets(context)
