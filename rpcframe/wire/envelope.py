"""The 2.0 envelope around every message, the JSON inside it, and message ids.

Every driver carries the same body, oslo.messaging's 2.0 envelope, so that
RabbitMQ interop holds by construction and the fake driver exercises exactly
what production sends::

    {"oslo.version": "2.0", "oslo.message": "<the message, as a JSON string>"}

A JSON object without the envelope keys is read as an old-style (1.0)
message, as oslo.messaging reads unenveloped notifications.

This module also owns what every kind of message shares: the JSON encoding
(:func:`dumps`), the ids in ``_unique_id`` (:data:`new_id`), the ``_sender``
key (:data:`SENDER_KEY`) and the typed field read the parsers use
(:func:`optional_field`). It is the bottom of :mod:`rpcframe.wire` and
imports nothing else from it.

It is on every call's path, so it is written for speed: the JSON encoder is
built once, :func:`encode` writes a fixed prefix instead of encoding the
outer object, and :func:`decode` reads that same layout with one string scan
before falling back to a full parse.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping
from typing import Any

from rpcframe import exceptions, versions
from rpcframe.serializer import to_primitive

__all__ = [
    "ENVELOPE_VERSION",
    "MESSAGE_KEY",
    "SENDER_KEY",
    "VERSION_KEY",
    "decode",
    "dumps",
    "encode",
    "new_id",
    "new_uuid",
    "optional_field",
]

ENVELOPE_VERSION = "2.0"
VERSION_KEY = "oslo.version"
MESSAGE_KEY = "oslo.message"
#: Who sent a request or notification (``name``, ``host``, ``pid``);
#: rpcframe adds it and oslo.messaging ignores it.
SENDER_KEY = "_sender"


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


def dumps(value: Any) -> str:
    """``value`` as the JSON text the wire would carry.

    Raises TypeError (a type JSON cannot hold) or ValueError (a cycle).
    """
    return _dumps(value)


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
    except RecursionError:
        raise exceptions.MalformedMessage(_TOO_DEEP.format(what="body")) from None
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
        supported = isinstance(version, str) and versions.is_compatible(ENVELOPE_VERSION, version)
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


# The JSON decoder recurses once per nesting level, so a body of 100,000 "["
# exhausts the stack; no message of ours nests anywhere near that deep.
_TOO_DEEP = "{what} is JSON nested too deeply to decode"


def _decode_inner(inner: str) -> dict[str, Any]:
    try:
        message = _loads(inner)
    except RecursionError:
        raise exceptions.MalformedMessage(_TOO_DEEP.format(what="'oslo.message'")) from None
    except ValueError as exc:
        raise exceptions.MalformedMessage(f"'oslo.message' is not JSON ({exc})") from None
    if not isinstance(message, dict):
        raise exceptions.MalformedMessage(
            f"'oslo.message' is a JSON {type(message).__name__}, not an object"
        )
    return message


def optional_field(message: Mapping[str, Any], key: str, kinds: type | tuple[type, ...]) -> Any:
    """``message[key]``, or None when absent or null.

    Raises MalformedMessage when the value is not one of ``kinds``; a bool
    is refused even where an int is allowed.
    """
    value = message.get(key)
    if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
        raise exceptions.MalformedMessage(
            f"{key!r} must be {getattr(kinds, '__name__', kinds)}, got {type(value).__name__}"
        )
    return value
