"""RPC request bodies: :class:`Request`, how a cast or call is encoded and parsed.

A request message holds ``method``, ``args``, optional ``namespace`` and
``version``, ``_unique_id``, the context flattened as ``_context_<key>``, and
for calls ``_msg_id``, ``_reply_q`` and ``_timeout`` (the call-monitor
interval). rpcframe adds ``_deadline`` (absolute UNIX time after which the
caller no longer waits) and ``_sender``; oslo.messaging ignores keys it does
not know; and ``_rpcframe`` for the call extensions of
:mod:`~rpcframe.wire.calls` (announced calls, streams), only when asked.

Built on :mod:`~rpcframe.wire.envelope` and :mod:`~rpcframe.wire.context`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcframe import exceptions, versions
from rpcframe.wire.calls import CallOptions, parse_call_options
from rpcframe.wire.context import pack_context, unpack_context
from rpcframe.wire.envelope import decode, encode, new_id, optional_field

__all__ = ["Request", "encode_request", "encode_request_message", "parse_request"]


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
        "options",
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
        options: CallOptions | None = None,
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
        #: rpcframe's call extensions (announce, stream), None for a plain request.
        self.options = options

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
        namespace = optional_field(message, "namespace", str)
        version = optional_field(message, "version", str)
        if version is not None:
            try:
                versions.parse_version(version)
            except ValueError as exc:
                raise exceptions.MalformedMessage(str(exc)) from None
        monitor_timeout = optional_field(message, "_timeout", (int, float))
        deadline = optional_field(message, "_deadline", (int, float))
        options = parse_call_options(message)
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
        options,
    )
