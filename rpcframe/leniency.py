"""What the lenient fake hands over that a real transport would not, and the warnings.

oslo.messaging's fake driver never encodes what it carries: an endpoint gets
the caller's context object itself, the caller gets the endpoint's result
object (a ``datetime`` stays a ``datetime``) and the very exception the
endpoint raised; and it keeps a fanout cast within the target's exchange,
where RabbitMQ sends it to the topic's servers in every exchange. Services'
unit tests rely on that. rpcframe's fake encodes
every message as production does and, in its default lenient mode, also
hands those objects over beside the body (the driver capability
``passes_objects``), so that such tests pass unchanged. Each time it makes a
difference that production would not, it warns once per kind of difference
(:class:`FakeLeniencyWarning`, naming what a real transport would do), so a
suite can find those places; ``fake://?strict=true`` turns the leniency off.

Nothing here runs on a real transport: the core consults it only for a driver
with the ``passes_objects`` capability.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

__all__ = [
    "FakeLeniencyWarning",
    "context",
    "exception",
    "fanout_in_one_exchange",
    "result",
]

_JSON_SCALARS = (str, int, float, bool, type(None))


class FakeLeniencyWarning(UserWarning):
    """fake:// handed over an object that a real transport would have changed."""


_warned: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _warn_once(kind: str, what: str, message: str) -> None:
    with _lock:
        if (kind, what) in _warned:
            return
        _warned.add((kind, what))
    warnings.warn(message, FakeLeniencyWarning, stacklevel=3)


def context(attachments: dict[str, Any] | None, decoded: Any) -> Any:
    """The context an endpoint gets: the caller's own object, when it was attached."""
    if not attachments or "context" not in attachments:
        return decoded
    original = attachments["context"]
    if type(original) is not dict and original is not None:
        name = type(original).__name__
        _warn_once(
            "context",
            name,
            f"fake:// handed the endpoint the caller's {name} context object as it is; "
            "a real transport hands over the dict it was sent as (its to_dict()), for "
            "the server's serializer to rebuild (fake://?strict=true does the same)",
        )
    return original


def result(attachments: dict[str, Any] | None, decoded: Any) -> Any:
    """The result a caller gets: the endpoint's own object, when it was attached."""
    if not attachments or "result" not in attachments:
        return decoded
    original = attachments["result"]
    unsendable = attachments.get("unsendable")
    if unsendable:
        name = type(original).__name__
        _warn_once(
            "unsendable",
            name,
            f"fake:// returned a {name} result as it is; a real transport cannot send "
            f"it and the caller gets an error instead ({unsendable}) "
            "(fake://?strict=true does the same)",
        )
    elif not isinstance(original, _JSON_SCALARS) and original != decoded:
        name = type(original).__name__
        _warn_once(
            "result",
            name,
            f"fake:// returned a {name} result as it is; a real transport returns it "
            f"as JSON carries it ({decoded!r:.80}) (fake://?strict=true does the same)",
        )
    return original


def exception(attachments: dict[str, Any] | None, production: BaseException) -> BaseException:
    """The exception a caller gets: the endpoint's own, when it was attached."""
    original = (attachments or {}).get("exception")
    if original is None:
        return production
    if type(original) is not type(production) or str(original) != str(production):
        name = type(original).__name__
        _warn_once(
            "exception",
            name,
            f"fake:// re-raised the endpoint's {name} as it is; a real transport raises "
            f"{type(production).__name__} (with the remote traceback in its message; a "
            "RemoteError unless the exception's module is in allowed_remote_exmods) "
            "(fake://?strict=true does the same)",
        )
    return original


def fanout_in_one_exchange(topic: str, exchange: str, others: set[str]) -> None:
    """Say that a fanout cast stayed in its exchange, where RabbitMQ's would not."""
    _warn_once(
        "fanout",
        topic,
        f"fake:// delivered a fanout cast on {topic!r} only to the servers in exchange "
        f"{exchange!r}, as oslo's fake does; on RabbitMQ a fanout exchange is named after "
        f"the topic alone, and the servers in {', '.join(sorted(others))} would get it too "
        "(fake://?strict=true does the same)",
    )
