"""The bytes on the wire: oslo.messaging's 2.0 envelope and the messages inside it.

One module per concept, each importing only those listed above it:

- :mod:`~rpcframe.wire.envelope`: the envelope, the JSON encoding, message
  ids, the ``_sender`` key;
- :mod:`~rpcframe.wire.context`: the context as ``_context_<key>`` entries;
- :mod:`~rpcframe.wire.replies`: ``Reply`` bodies (results, failures,
  heartbeats);
- :mod:`~rpcframe.wire.calls`: rpcframe's ``_rpcframe`` call extensions
  (announced calls, streamed replies, flow control, cancellation);
- :mod:`~rpcframe.wire.requests`: ``Request`` bodies (casts and calls);
- :mod:`~rpcframe.wire.notifications`: ``Notification`` bodies and the
  priorities;
- :mod:`~rpcframe.wire.remote_errors`: an exception as oslo.messaging's
  failure string, and back.

The rest of rpcframe uses the names gathered here (``wire.encode``,
``wire.parse_request``). Everything is pure: no I/O, no threads. Parsing
never trusts its input: a body that is not a well-formed message raises
:class:`~rpcframe.exceptions.MalformedMessage` saying what was wrong.
"""

from __future__ import annotations

from rpcframe.wire.calls import CallOptions, encode_control, parse_call_options
from rpcframe.wire.context import pack_context, unpack_context
from rpcframe.wire.envelope import (
    ENVELOPE_VERSION,
    SENDER_KEY,
    decode,
    dumps,
    encode,
    new_id,
    new_uuid,
)
from rpcframe.wire.notifications import (
    PRIORITIES,
    Notification,
    encode_notification,
    parse_notification,
)
from rpcframe.wire.remote_errors import deserialize_remote_exception, serialize_remote_exception
from rpcframe.wire.replies import Reply, encode_reply, parse_reply
from rpcframe.wire.requests import Request, encode_request, encode_request_message, parse_request

__all__ = [
    "ENVELOPE_VERSION",
    "CallOptions",
    "PRIORITIES",
    "SENDER_KEY",
    "Notification",
    "Reply",
    "Request",
    "decode",
    "deserialize_remote_exception",
    "dumps",
    "encode",
    "encode_control",
    "encode_notification",
    "encode_reply",
    "encode_request",
    "encode_request_message",
    "new_id",
    "new_uuid",
    "pack_context",
    "parse_call_options",
    "parse_notification",
    "parse_reply",
    "parse_request",
    "serialize_remote_exception",
    "unpack_context",
]
