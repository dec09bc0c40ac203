"""Request bodies: casts and calls (rpcframe.wire.requests)."""

from __future__ import annotations

import pytest

from rpcframe import exceptions, wire


def test_a_call_request_carries_the_oslo_fields():
    body = wire.encode_request(
        "echo",
        {"x": 1},
        {"user": "u"},
        namespace="ns",
        version="1.2",
        msg_id="m1",
        reply_q="reply_q1",
        monitor_timeout=5,
        deadline=123.5,
    )
    message = wire.decode(body)
    assert message["method"] == "echo"
    assert message["args"] == {"x": 1}
    assert message["namespace"] == "ns"
    assert message["version"] == "1.2"
    assert message["_msg_id"] == "m1"
    assert message["_reply_q"] == "reply_q1"
    assert message["_timeout"] == 5
    assert message["_deadline"] == 123.5
    assert message["_context_user"] == "u"
    assert len(message["_unique_id"]) == 32


def test_a_cast_request_has_no_reply_fields():
    message = wire.decode(wire.encode_request("echo", {}, {}))
    assert "_msg_id" not in message and "_reply_q" not in message
    assert "namespace" not in message and "version" not in message


def test_parse_request_reads_back_what_encode_request_wrote():
    body = wire.encode_request(
        "echo", {"x": 1}, {"user": "u"}, version="1.2", msg_id="m", reply_q="q", deadline=9.0
    )
    request = wire.parse_request(body)
    assert (request.method, request.args, request.version) == ("echo", {"x": 1}, "1.2")
    assert request.context == request.ctxt == {"user": "u"}
    assert request.wants_reply and (request.msg_id, request.reply_q) == ("m", "q")
    assert request.deadline == 9.0
    assert request.message["method"] == "echo"


def test_an_oslo_request_without_args_or_version_parses():
    request = wire.parse_request(wire.encode({"method": "ping"}))
    assert request.args == {} and request.version is None and not request.wants_reply


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"args": {}}, "no 'method'"),
        ({"method": ""}, "non-empty string"),
        ({"method": 5}, "non-empty string"),
        ({"method": "m", "args": [1]}, "'args' must be an object"),
        ({"method": "m", "namespace": 3}, "'namespace' must be str"),
        ({"method": "m", "version": "one"}, "version must be"),
        ({"method": "m", "_timeout": "soon"}, "'_timeout' must be"),
        ({"method": "m", "_deadline": True}, "'_deadline' must be"),
    ],
)
def test_parse_request_names_what_is_wrong(message, reason):
    with pytest.raises(exceptions.MalformedMessage) as info:
        wire.parse_request(wire.encode(message))
    assert reason in info.value.reason


def test_a_malformed_call_still_says_where_to_reply():
    body = wire.encode({"_msg_id": "m", "_reply_q": "q", "args": {}})
    with pytest.raises(exceptions.MalformedMessage) as info:
        wire.parse_request(body)
    assert (info.value.msg_id, info.value.reply_q) == ("m", "q")


def test_a_malformed_cast_has_nowhere_to_reply():
    with pytest.raises(exceptions.MalformedMessage) as info:
        wire.parse_request(wire.encode({"args": {}}))
    assert info.value.msg_id is None and info.value.reply_q is None
