"""Fuzzing the wire decoder: any input gives a message or MalformedMessage, nothing else.

Two kinds of input: arbitrary bytes, and JSON that looks like our messages
(the fields requests, replies and notifications have, with values of any
type, enveloped or not, sometimes nested deeply). The seed hypothesis prints
on a failure reproduces it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpcframe import exceptions, wire

PARSERS = [wire.decode, wire.parse_request, wire.parse_reply, wire.parse_notification]

FIELDS = [
    "method", "args", "namespace", "version", "_msg_id", "_reply_q", "_unique_id",
    "_timeout", "_deadline", "_sender", "_context_user", "result", "failure", "ending",
    "event_type", "priority", "payload", "publisher_id", "message_id", "timestamp",
    "oslo.version", "oslo.message",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
messages = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8)


def body_of(message: dict, enveloped: bool, depth: int) -> bytes:
    text = json.dumps(message)
    if depth:
        text = (
            text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}" if message else "[" * depth
        )
    if enveloped:
        text = json.dumps({"oslo.version": "2.0", "oslo.message": text})
    return text.encode()


def settles(parse, body: bytes) -> None:
    try:
        parse(body)
    except exceptions.MalformedMessage as exc:
        assert exc.reason


fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@fuzz
@given(body=st.binary(max_size=200))
def test_any_bytes_decode_or_are_malformed(parse, body):
    settles(parse, body)


@pytest.mark.parametrize("parse", PARSERS, ids=lambda p: p.__name__)
@fuzz
@given(
    message=messages,
    enveloped=st.booleans(),
    depth=st.sampled_from([0, 0, 0, 10, 100_000]),
)
def test_message_shaped_json_decodes_or_is_malformed(parse, message, enveloped, depth):
    settles(parse, body_of(message, enveloped, depth))
