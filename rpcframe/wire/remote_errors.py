"""The remote-error codec: an exception as oslo.messaging's failure string, and back.

A reply's ``failure`` is a JSON string of an object with ``class``,
``module``, ``message``, ``tb`` (the formatted traceback, a list of strings),
``args`` and ``kwargs``. The caller rebuilds builtins and classes of allowed
modules as ``<Name>_Remote`` subclasses of themselves, anything else as
:class:`~rpcframe.exceptions.RemoteError`; only allowed modules are ever
imported.

Depends on :mod:`~rpcframe.wire.envelope` for the JSON encoding alone, so a
failure's text is written exactly as a message's would be.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from rpcframe import exceptions
from rpcframe.wire.envelope import dumps

__all__ = ["REMOTE_POSTFIX", "deserialize_remote_exception", "serialize_remote_exception"]

LOG = logging.getLogger(__name__)

REMOTE_POSTFIX = "_Remote"
_BUILTIN_MODULES = ("exceptions", "builtins")


def serialize_remote_exception(exc_info: tuple[Any, Any, Any] | None = None) -> str:
    """Describe an exception for the caller, in oslo.messaging's failure format.

    ``exc_info`` defaults to the exception being handled.
    """
    if exc_info is None:
        exc_info = sys.exc_info()
    failure = exc_info[1]
    assert failure is not None, "serialize_remote_exception() needs an exception"
    cls_name = type(failure).__name__
    mod_name = type(failure).__module__
    # An exception rebuilt from another service keeps its original identity.
    if cls_name.endswith(REMOTE_POSTFIX) and mod_name.endswith(REMOTE_POSTFIX):
        cls_name = cls_name[: -len(REMOTE_POSTFIX)]
        mod_name = mod_name[: -len(REMOTE_POSTFIX)]
    kwargs = getattr(failure, "kwargs", None)
    data = {
        "class": cls_name,
        "module": mod_name,
        "message": str(failure),
        "tb": traceback.format_exception(*exc_info),
        "args": failure.args,
        "kwargs": kwargs if isinstance(kwargs, Mapping) else {},
    }
    try:
        return dumps(data)
    except (TypeError, ValueError):
        data["args"] = [str(a) for a in failure.args]
        data["kwargs"] = {}
        return dumps(data)


def deserialize_remote_exception(data: str, allowed_remote_exmods: Iterable[str]) -> BaseException:
    """Rebuild the exception a remote endpoint raised.

    Builtins and classes from ``allowed_remote_exmods`` come back as a
    ``<Name>_Remote`` subclass of themselves whose ``str()`` includes the
    remote traceback; anything else (or anything that cannot be rebuilt)
    comes back as :class:`~rpcframe.exceptions.RemoteError`. Only modules
    that are allowed are ever imported.
    """
    try:
        failure = json.loads(data)
        if not isinstance(failure, dict):
            raise ValueError("not an object")
    except ValueError:
        return exceptions.RemoteError("UnknownError", f"unreadable failure: {data!r:.200}", [])
    trace = failure.get("tb") or []
    if not isinstance(trace, list):
        trace = [str(trace)]
    text = str(failure.get("message", ""))
    message = text + "\n" + "\n".join(str(line) for line in trace)
    name = failure.get("class")
    module = failure.get("module")
    if module in _BUILTIN_MODULES:
        module = "builtins"
    if not isinstance(name, str) or not isinstance(module, str):
        return exceptions.RemoteError(str(name), text, trace)
    if module != "builtins" and module not in set(allowed_remote_exmods):
        return exceptions.RemoteError(name, text, trace)
    try:
        __import__(module)
        klass = getattr(sys.modules[module], name)
        if not (isinstance(klass, type) and issubclass(klass, Exception)):
            raise TypeError(f"{module}.{name} is not an Exception class")
        args = failure.get("args") or []
        kwargs = failure.get("kwargs") or {}
        exc = klass(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - any failure to rebuild is reported the same way
        LOG.warning("Could not rebuild remote exception %s.%s: %s", module, name, error)
        return exceptions.RemoteError(name, text, trace)

    try:
        exc.__class__ = _remote_class(klass)
        exc._remote_message = message  # type: ignore[attr-defined]
    except TypeError:
        # Builtin exception types cannot change class; carry the remote text instead.
        exc.args = (message, *exc.args[1:])
    return exc


def _remote_str(self: BaseException) -> str:
    return getattr(self, "_remote_message", "")


_remote_classes: dict[type, type] = {}


def _remote_class(klass: type) -> type:
    """The ``<Name>_Remote`` subclass of ``klass``, made once per class."""
    remote = _remote_classes.get(klass)
    if remote is None:
        remote = type(klass.__name__ + REMOTE_POSTFIX, (klass,), {"__str__": _remote_str})
        remote.__module__ = klass.__module__ + REMOTE_POSTFIX
        _remote_classes[klass] = remote
    return remote
