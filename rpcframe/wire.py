"""The bytes on the wire: envelopes, request and reply bodies, remote errors.

Every driver carries the same body, oslo.messaging's 2.0 envelope, so that
RabbitMQ interop holds by construction and the fake driver exercises exactly
what production sends::

    {"oslo.version": "2.0", "oslo.message": "<the message, as a JSON string>"}

A request message holds ``method``, ``args``, optional ``namespace`` and
``version``, ``_unique_id``, the context flattened as ``_context_<key>``, and
for calls ``_msg_id``, ``_reply_q`` and ``_timeout`` (the call-monitor
interval). rpcframe adds ``_deadline`` (absolute UNIX time after which the
caller no longer waits); oslo.messaging ignores keys it does not know.

A reply holds ``result``, ``failure`` (a JSON string describing a remote
exception), ``ending`` (true on the last message of a reply), ``_msg_id`` and
``_unique_id``. A reply with ``ending`` false and neither result nor failure
is a call-monitor heartbeat.

A notification holds ``message_id``, ``publisher_id``, ``event_type``,
``priority`` (upper case), ``payload``, ``timestamp``, ``_unique_id`` and the
context as ``_context_<key>``; the ``messagingv2`` driver wraps it in the
envelope, the older ``messaging`` driver sends it bare, and both are read.

Requests and notifications sent by rpcframe also carry ``_sender``: who sent
them (``name``, ``host``, ``pid``). oslo.messaging ignores it.

Everything here is pure: no I/O, no threads. Parsing never trusts its input:
a body that is not a well-formed message raises
:class:`~rpcframe.exceptions.MalformedMessage` saying what was wrong.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from rpcframe import exceptions, versions
from rpcframe.serializer import to_primitive

__all__ = [
    "ENVELOPE_VERSION",
    "PRIORITIES",
    "SENDER_KEY",
    "Notification",
    "Reply",
    "Request",
    "decode",
    "deserialize_remote_exception",
    "dumps",
    "encode",
    "encode_notification",
    "encode_reply",
    "encode_request",
    "new_uuid",
    "pack_context",
    "parse_notification",
    "parse_reply",
    "parse_request",
    "serialize_remote_exception",
    "unpack_context",
]

LOG = logging.getLogger(__name__)

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
CONTEXT_PREFIX = "_context_"
REMOTE_POSTFIX = "_Remote"
SENDER_KEY = "_sender"
#: Notification priorities, lower case, in oslo.messaging's order.
PRIORITIES = ("audit", "debug", "info", "warn", "error", "critical", "sample")
_BUILTIN_MODULES = ("exceptions", "builtins")


def _default(value: Any) -> Any:
    return to_primitive(value)


def _make_dumps() -> Any:
    """A JSON encoder for message bodies, built once.

    The C encoder object is reused across calls (``JSONEncoder.encode``
    rebuilds it every time); cycle detection is off, so a cyclic structure
    fails with RecursionError, reported as ValueError.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - pure-Python json
        return json.JSONEncoder(default=_default).encode
    encoder = c_make_encoder(
        None, _default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def dumps(value: Any) -> str:
        try:
            return "".join(encoder(value, 0))
        except RecursionError:
            raise ValueError(
                "the value contains a reference cycle (or is nested too deeply)"
            ) from None

    return dumps


_dumps = _make_dumps()
_quote = json.encoder.encode_basestring_ascii
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]
_loads = json.loads
_ENVELOPE_PREFIX = '{"oslo.version": "2.0", "oslo.message": '
_PREFIX_LEN = len(_ENVELOPE_PREFIX)


class _Ids:
    """32-hex-digit ids: a random per-process prefix and a counter.

    As unique as uuid4 in practice and ten times cheaper; the prefix is
    drawn again in a forked child so parent and child never collide.
    """

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.prefix = os.urandom(8).hex()
        self.counter = itertools.count(int.from_bytes(os.urandom(4), "big"))

    def __call__(self) -> str:
        return f"{self.prefix}{next(self.counter) & 0xFFFFFFFFFFFFFFFF:016x}"


#: Return a fresh 32-hex-digit id (the form oslo.messaging uses for ids).
new_id = _Ids()


def new_uuid() -> str:
    """A fresh random-UUID-shaped id, as oslo.messaging's ``message_id`` (uuid4).

    Built from :data:`new_id` with the version and variant digits a UUID
    parser expects; the counter keeps it unique.
    """
    h = new_id()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


# -- envelope ---------------------------------------------------------------


def encode(message: Mapping[str, Any]) -> bytes:
    """Wrap ``message`` in the 2.0 envelope and return UTF-8 JSON bytes.

    Raises TypeError naming the value that cannot be sent as JSON.
    """
    return (_ENVELOPE_PREFIX + _quote(_dumps(message)) + "}").encode()


def decode(body: bytes | str) -> dict[str, Any]:
    """Return the message inside an envelope.

    A JSON object without the envelope keys is accepted as an old-style
    (1.0) message, as oslo.messaging does for unenveloped notifications.
    """
    try:
        if isinstance(body, str):
            text = body
        elif isinstance(body, (bytes, bytearray, memoryview)):
            text = str(body, "utf-8")
        else:
            raise TypeError
        if text.startswith(_ENVELOPE_PREFIX) and text[_PREFIX_LEN : _PREFIX_LEN + 1] == '"':
            # Our own layout (and oslo.messaging's): read the inner string directly.
            inner, end = _scanstring(text, _PREFIX_LEN + 1)
            if text[end:].strip() == "}":
                return _decode_inner(inner)
        outer = _loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise exceptions.MalformedMessage(f"body is not JSON ({exc})") from None
    except TypeError:
        raise exceptions.MalformedMessage(
            f"body must be bytes or str, got {type(body).__name__}"
        ) from None
    if not isinstance(outer, dict):
        raise exceptions.MalformedMessage(f"body is a JSON {type(outer).__name__}, not an object")
    if VERSION_KEY not in outer and MESSAGE_KEY not in outer:
        return outer
    version = outer.get(VERSION_KEY)
    try:
        supported = versions.is_compatible(ENVELOPE_VERSION, version)
    except ValueError:
        supported = False
    if not supported:
        raise exceptions.MalformedMessage(
            f"envelope version {version!r} is not supported (expected {ENVELOPE_VERSION})"
        )
    inner = outer.get(MESSAGE_KEY)
    if not isinstance(inner, str):
        raise exceptions.MalformedMessage("envelope has no 'oslo.message' string")
    return _decode_inner(inner)


def _decode_inner(inner: str) -> dict[str, Any]:
    try:
        message = _loads(inner)
    except ValueError as exc:
        raise exceptions.MalformedMessage(f"'oslo.message' is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise exceptions.MalformedMessage(
            f"'oslo.message' is a JSON {type(message).__name__}, not an object"
        )
    return message


# -- context ----------------------------------------------------------------


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


# -- requests ---------------------------------------------------------------


class Request:
    """A parsed RPC request. ``msg_id`` and ``reply_q`` are set for calls."""

    __slots__ = (
        "method",
        "args",
        "namespace",
        "version",
        "context",
        "unique_id",
        "msg_id",
        "reply_q",
        "monitor_timeout",
        "deadline",
        "message",
    )

    def __init__(
        self,
        method: str,
        args: dict[str, Any],
        namespace: str | None,
        version: str | None,
        context: dict[str, Any],
        unique_id: str | None,
        msg_id: str | None,
        reply_q: str | None,
        monitor_timeout: float | None,
        deadline: float | None,
        message: dict[str, Any],
    ) -> None:
        self.method = method
        self.args = args
        self.namespace = namespace
        self.version = version
        self.context = context
        self.unique_id = unique_id
        self.msg_id = msg_id
        self.reply_q = reply_q
        self.monitor_timeout = monitor_timeout
        self.deadline = deadline
        self.message = message

    @property
    def wants_reply(self) -> bool:
        return bool(self.msg_id and self.reply_q)

    @property
    def ctxt(self) -> dict[str, Any]:
        """The context dict, under the name oslo.messaging's dispatcher reads."""
        return self.context

    def __repr__(self) -> str:
        kind = "call" if self.wants_reply else "cast"
        return f"<Request {kind} {self.method!r} namespace={self.namespace} version={self.version}>"


def encode_request(
    method: str,
    args: Mapping[str, Any],
    context: Any,
    *,
    namespace: str | None = None,
    version: str | None = None,
    **fields: Any,
) -> bytes:
    """Build the body of a cast (no ``msg_id``) or a call."""
    message: dict[str, Any] = {"method": method, "args": args}
    if namespace is not None:
        message["namespace"] = namespace
    if version is not None:
        message["version"] = version
    return encode_request_message(message, context, **fields)


def encode_request_message(
    message: Mapping[str, Any],
    context: Any,
    *,
    msg_id: str | None = None,
    reply_q: str | None = None,
    monitor_timeout: float | None = None,
    deadline: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a request body from oslo's request dict (``method``, ``args``,
    optional ``namespace`` and ``version``), adding the call's routing fields
    when ``msg_id`` is given."""
    body: dict[str, Any] = dict(message)
    if msg_id is not None:
        body["_msg_id"] = msg_id
        body["_reply_q"] = reply_q
        body["_timeout"] = monitor_timeout
    if deadline is not None:
        body["_deadline"] = deadline
    if extra:
        body.update(extra)
    body["_unique_id"] = new_id()
    pack_context(body, context)
    return encode(body)


def _optional(message: Mapping[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    value = message.get(key)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise exceptions.MalformedMessage(
            f"{key!r} must be {getattr(kinds, '__name__', kinds)}, got {type(value).__name__}"
        )
    return value


def parse_request(body: bytes | str) -> Request:
    """Parse and check a request body.

    Raises MalformedMessage; its ``msg_id`` and ``reply_q`` are filled in
    when they could be read, so the server can still answer the caller.
    """
    message = decode(body)
    msg_id = message.get("_msg_id")
    reply_q = message.get("_reply_q")
    if not isinstance(msg_id, str) or not isinstance(reply_q, str):
        msg_id = reply_q = None
    try:
        method = message.get("method")
        if not isinstance(method, str) or not method:
            raise exceptions.MalformedMessage(
                "request has no 'method'"
                if method is None
                else f"'method' must be a non-empty string, got {method!r}"
            )
        args = message.get("args")
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            raise exceptions.MalformedMessage(
                f"'args' must be an object, got {type(args).__name__}"
            )
        namespace = _optional(message, "namespace", str)
        version = _optional(message, "version", str)
        if version is not None:
            try:
                versions.parse_version(version)
            except ValueError as exc:
                raise exceptions.MalformedMessage(str(exc)) from None
        monitor_timeout = _optional(message, "_timeout", (int, float))
        deadline = _optional(message, "_deadline", (int, float))
    except exceptions.MalformedMessage as exc:
        exc.msg_id, exc.reply_q = msg_id, reply_q
        raise
    return Request(
        method,
        args,
        namespace,
        version,
        unpack_context(message),
        message.get("_unique_id"),
        msg_id,
        reply_q,
        monitor_timeout,
        deadline,
        message,
    )


# -- replies ----------------------------------------------------------------


class Reply:
    """A parsed reply: a result, a failure, or (``ending`` false) a heartbeat."""

    __slots__ = ("msg_id", "result", "failure", "ending", "message", "attachments")

    def __init__(
        self, msg_id: str, result: Any, failure: str | None, ending: bool, message: dict[str, Any]
    ) -> None:
        self.msg_id = msg_id
        self.result = result
        self.failure = failure
        self.ending = ending
        self.message = message
        #: Objects the lenient fake handed over beside the body (see rpcframe.leniency).
        self.attachments: dict[str, Any] | None = None

    @property
    def is_heartbeat(self) -> bool:
        return not self.ending and self.failure is None and self.result is None


def encode_reply(
    msg_id: str,
    result: Any = None,
    failure: str | None = None,
    ending: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a reply body. ``failure`` comes from :func:`serialize_remote_exception`."""
    message: dict[str, Any] = {
        "result": result,
        "failure": failure,
        "ending": ending,
        "_msg_id": msg_id,
        "_unique_id": new_id(),
    }
    if extra:
        message.update(extra)
    return encode(message)


def parse_reply(body: bytes | str) -> Reply:
    """Parse a reply body; raise MalformedMessage if it is not one."""
    message = decode(body)
    msg_id = message.get("_msg_id")
    if not isinstance(msg_id, str):
        raise exceptions.MalformedMessage("reply has no '_msg_id' string")
    failure = message.get("failure")
    if failure is not None and not isinstance(failure, str):
        raise exceptions.MalformedMessage(
            f"'failure' must be a JSON string, got {type(failure).__name__}"
        )
    # Replies from before 'ending' existed carried the result alone.
    ending = bool(message.get("ending", True))
    return Reply(msg_id, message.get("result"), failure, ending, message)


# -- notifications ----------------------------------------------------------


class Notification:
    """A parsed notification. ``priority`` is lower case, as endpoints name it.

    ``sender`` is the raw ``_sender`` value (None from peers that do not
    send one); ``message`` is everything that was received.
    """

    __slots__ = (
        "priority",
        "publisher_id",
        "event_type",
        "payload",
        "message_id",
        "timestamp",
        "context",
        "sender",
        "unique_id",
        "message",
    )

    def __init__(
        self,
        priority: str,
        publisher_id: str | None,
        event_type: str,
        payload: Any,
        message_id: Any,
        timestamp: Any,
        context: dict[str, Any],
        sender: Any,
        unique_id: str | None,
        message: dict[str, Any],
    ) -> None:
        self.priority = priority
        self.publisher_id = publisher_id
        self.event_type = event_type
        self.payload = payload
        self.message_id = message_id
        self.timestamp = timestamp
        self.context = context
        self.sender = sender
        self.unique_id = unique_id
        self.message = message

    def __repr__(self) -> str:
        return (
            f"<Notification {self.priority} {self.event_type!r} from {self.publisher_id!r} "
            f"id={self.message_id}>"
        )


def encode_notification(
    message: Mapping[str, Any],
    context: Any,
    *,
    envelope: bool = True,
    sender: Mapping[str, Any] | None = None,
) -> bytes:
    """Build a notification body from a notifier's message dict.

    ``message`` holds ``message_id``, ``publisher_id``, ``event_type``,
    ``priority``, ``payload`` and ``timestamp``. With ``envelope`` false the
    body is the bare message (oslo.messaging's 1.0 ``messaging`` driver).
    Raises TypeError or ValueError for a value JSON cannot hold.
    """
    body = dict(message)
    body["_unique_id"] = new_id()
    if sender is not None:
        body[SENDER_KEY] = sender
    pack_context(body, context)
    if envelope:
        return encode(body)
    return _dumps(body).encode()


def parse_notification(body: bytes | str) -> Notification:
    """Parse an enveloped (2.0) or bare (1.0) notification body.

    Raises MalformedMessage when the body is not a notification: no known
    ``priority``, an ``event_type`` that is not a string, a ``publisher_id``
    that is neither a string nor null.
    """
    message = decode(body)
    priority = message.get("priority")
    if not isinstance(priority, str):
        raise exceptions.MalformedMessage(
            "notification has no 'priority'"
            if priority is None
            else f"'priority' must be a string, got {type(priority).__name__}"
        )
    level = priority.lower()
    if level not in PRIORITIES:
        raise exceptions.MalformedMessage(f"unknown notification priority {priority!r}")
    event_type = message.get("event_type")
    if not isinstance(event_type, str):
        raise exceptions.MalformedMessage(
            "notification has no 'event_type'"
            if event_type is None
            else f"'event_type' must be a string, got {type(event_type).__name__}"
        )
    publisher_id = _optional(message, "publisher_id", str)
    return Notification(
        level,
        publisher_id,
        event_type,
        message.get("payload"),
        message.get("message_id"),
        message.get("timestamp"),
        unpack_context(message),
        message.get(SENDER_KEY),
        message.get("_unique_id"),
        message,
    )


def dumps(value: Any) -> str:
    """``value`` as the JSON text the wire would carry.

    Raises TypeError (a type JSON cannot hold) or ValueError (a cycle).
    """
    return _dumps(value)


# -- remote errors ----------------------------------------------------------


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
        return _dumps(data)
    except (TypeError, ValueError):
        data["args"] = [str(a) for a in failure.args]
        data["kwargs"] = {}
        return _dumps(data)


def deserialize_remote_exception(data: str, allowed_remote_exmods: Iterable[str]) -> BaseException:
    """Rebuild the exception a remote endpoint raised.

    Builtins and classes from ``allowed_remote_exmods`` come back as a
    ``<Name>_Remote`` subclass of themselves whose ``str()`` includes the
    remote traceback; anything else (or anything that cannot be rebuilt)
    comes back as :class:`~rpcframe.exceptions.RemoteError`. Only modules
    that are allowed are ever imported.
    """
    try:
        failure = _loads(data)
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
