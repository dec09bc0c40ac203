"""RPC reply bodies: :class:`Reply`, encoding and parsing a result, failure or heartbeat.

A reply holds ``result``, ``failure`` (a JSON string describing a remote
exception, from :mod:`~rpcframe.wire.remote_errors`), ``ending`` (true on
the last message of a reply), ``_msg_id`` and ``_unique_id``. A reply with
``ending`` false and neither result nor failure is a call-monitor heartbeat.

Built on :mod:`~rpcframe.wire.envelope` only; the failure is carried as an
opaque string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcframe import exceptions
from rpcframe.wire.envelope import decode, encode, new_id

__all__ = ["Reply", "encode_reply", "parse_reply"]


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
    """Build a reply body. ``failure`` comes from
    :func:`~rpcframe.wire.remote_errors.serialize_remote_exception`."""
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
