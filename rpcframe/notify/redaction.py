"""What of a context leaves the process with a notification, and what never does.

Notifications are broadcast to whoever listens, often other teams' tools, so
credentials must not ride along. The notifier turns the context it is given
into a dict and removes secrets from it:

1. ``None`` becomes ``{}``.
2. An object with ``redacted_copy()`` (oslo.context's ``RequestContext``) is
   replaced by that copy, which already omits its tokens.
3. The notifier's serializer turns the result into a dict
   (``serialize_context``); an object it leaves as is becomes
   ``to_dict()``. An object without ``to_dict()`` cannot be sent: the
   notification goes without a context (logged as a warning).
4. From that dict, at every depth of nested dicts, every key whose
   lower-cased name contains one of :data:`SECRET_WORDS` is removed.

Everything else is kept as it was: a plain dict context, as
``{"user_id": ..., "request_id": ..., "auth_token": ...}``, arrives as
``{"user_id": ..., "request_id": ...}``. (oslo.messaging drops a plain dict
context altogether; keeping it minus its secrets is what listeners expect.)
Values are never inspected, only key names: put secrets under names that
say so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["SECRET_WORDS", "is_secret_key", "mask_secrets", "sanitize_context", "strip_secrets"]

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


def sanitize_context(ctxt: Any, serializer: Any) -> dict[str, Any]:
    """The context as it may leave the process; see the module documentation."""
    if ctxt is None:
        return {}
    redact = getattr(ctxt, "redacted_copy", None)
    if callable(redact):
        ctxt = redact()
    context = serializer.serialize_context(ctxt)
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
