"""The wire format: envelopes, requests, replies and the remote-error codec."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

import rpcframe
from rpcframe import exceptions, wire


class AppError(Exception):
    def __init__(self, code, detail=""):
        super().__init__(code, detail)
        self.code = code


class NotConstructible(Exception):
    def __init__(self, a, b, c):
        super().__init__(a)


# -- envelope ----------------------------------------------------------------------


def test_encode_produces_the_oslo_2_0_envelope():
    body = wire.encode({"method": "echo", "args": {"x": 1}})
    outer = json.loads(body)
    assert set(outer) == {"oslo.version", "oslo.message"}
    assert outer["oslo.version"] == "2.0"
    assert json.loads(outer["oslo.message"]) == {"method": "echo", "args": {"x": 1}}


def test_encoded_bodies_are_ascii_bytes():
    body = wire.encode({"text": "ünïcødé ☃"})
    assert isinstance(body, bytes)
    body.decode("ascii")


def test_decode_reverses_encode():
    message = {"a": [1, 2.5, None, True], "b": {"c": "ü\u0000\u2028"}}
    assert wire.decode(wire.encode(message)) == message


def test_decode_accepts_an_envelope_with_other_spacing_and_key_order():
    inner = json.dumps({"method": "m"})
    body = json.dumps({"oslo.message": inner, "oslo.version": "2.0"}, separators=(",", ":"))
    assert wire.decode(body.encode()) == {"method": "m"}


def test_decode_accepts_a_str_body():
    assert wire.decode(wire.encode({"k": 1}).decode()) == {"k": 1}


def test_decode_accepts_an_unenveloped_object_as_an_old_style_message():
    assert wire.decode(b'{"event_type": "x"}') == {"event_type": "x"}


def test_decode_accepts_a_newer_minor_envelope_version_of_the_same_major():
    body = json.dumps({"oslo.version": "2.0", "oslo.message": "{}"})
    assert wire.decode(body) == {}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'"a string"', "JSON str, not an object"),
        (b'{"oslo.version": "3.0", "oslo.message": "{}"}', "envelope version '3.0'"),
        (b'{"oslo.version": "two", "oslo.message": "{}"}', "envelope version 'two'"),
        (b'{"oslo.version": "2.0"}', "no 'oslo.message' string"),
        (b'{"oslo.version": "2.0", "oslo.message": 5}', "no 'oslo.message' string"),
        (b'{"oslo.version": "2.0", "oslo.message": "{nope"}', "'oslo.message' is not JSON"),
        (b'{"oslo.version": "2.0", "oslo.message": "[1]"}', "JSON list, not an object"),
    ],
)
def test_decode_names_what_is_wrong_with_a_malformed_body(body, reason):
    with pytest.raises(exceptions.MalformedMessage) as info:
        wire.decode(body)
    assert reason in info.value.reason


def test_decode_refuses_a_body_that_is_not_bytes_or_text():
    with pytest.raises(exceptions.MalformedMessage, match="must be bytes or str"):
        wire.decode(12)  # type: ignore[arg-type]


def test_a_fast_path_prefix_with_trailing_garbage_falls_back_and_fails():
    body = wire.encode({"k": 1}) + b" trailing"
    with pytest.raises(exceptions.MalformedMessage):
        wire.decode(body)


# -- values ------------------------------------------------------------------------


def test_values_json_lacks_are_converted_as_oslo_converts_them():
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, 6)
    ident = uuid.UUID(int=1)
    message = wire.decode(
        wire.encode(
            {
                "when": when,
                "day": datetime.date(2024, 1, 2),
                "id": ident,
                "money": decimal.Decimal("1.50"),
                "tags": {"only"},
                "pair": (1, 2),
                "raw": b"bytes",
            }
        )
    )
    assert message == {
        "when": "2024-01-02T03:04:05.000006",
        "day": "2024-01-02",
        "id": str(ident),
        "money": "1.50",
        "tags": ["only"],
        "pair": [1, 2],
        "raw": "bytes",
    }


def test_an_object_json_cannot_hold_is_a_type_error_naming_its_type():
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        wire.encode({"x": Opaque()})


def test_bytes_that_are_not_utf8_are_refused_clearly():
    with pytest.raises(TypeError, match="not UTF-8"):
        wire.encode({"x": b"\xff\xfe"})


def test_a_reference_cycle_is_a_value_error():
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="cycle"):
        wire.encode({"x": cyclic})


def test_ids_are_32_hex_digits_and_distinct():
    ids = {wire.new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# -- context -----------------------------------------------------------------------


def test_a_context_is_flattened_into_prefixed_keys_and_back():
    message: dict = {"method": "m"}
    wire.pack_context(message, {"user": "u", "roles": ["a"]})
    assert message == {"method": "m", "_context_user": "u", "_context_roles": ["a"]}
    assert wire.unpack_context(message) == {"user": "u", "roles": ["a"]}


def test_a_context_object_with_to_dict_is_accepted():
    class Ctx:
        def to_dict(self):
            return {"user": "u"}

    message: dict = {}
    wire.pack_context(message, Ctx())
    assert message == {"_context_user": "u"}


def test_a_context_that_is_neither_dict_nor_has_to_dict_is_refused():
    with pytest.raises(TypeError, match="to_dict"):
        wire.pack_context({}, object())


# -- requests ----------------------------------------------------------------------


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


# -- replies -----------------------------------------------------------------------


def test_a_reply_carries_the_oslo_fields():
    message = wire.decode(wire.encode_reply("m1", result={"r": 1}))
    assert message["result"] == {"r": 1}
    assert message["failure"] is None
    assert message["ending"] is True
    assert message["_msg_id"] == "m1"
    assert "_unique_id" in message


def test_parse_reply_tells_heartbeats_from_results():
    beat = wire.parse_reply(wire.encode_reply("m", ending=False))
    final = wire.parse_reply(wire.encode_reply("m", result=None))
    assert beat.is_heartbeat and not beat.ending
    assert not final.is_heartbeat and final.ending


def test_a_reply_without_ending_is_final_as_in_old_oslo():
    reply = wire.parse_reply(wire.encode({"_msg_id": "m", "result": 3}))
    assert reply.ending and reply.result == 3


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"result": 1}, "no '_msg_id'"),
        ({"_msg_id": "m", "failure": {"class": "x"}}, "'failure' must be a JSON string"),
    ],
)
def test_parse_reply_names_what_is_wrong(message, reason):
    with pytest.raises(exceptions.MalformedMessage) as info:
        wire.parse_reply(wire.encode(message))
    assert reason in info.value.reason


# -- remote errors -----------------------------------------------------------------


def _failure_of(exc):
    try:
        raise exc
    except Exception:
        return wire.serialize_remote_exception()


def test_a_failure_has_the_oslo_fields():
    data = json.loads(_failure_of(AppError(7, "bad")))
    assert data["class"] == "AppError"
    assert data["module"] == __name__
    assert data["message"] == "(7, 'bad')"
    assert data["args"] == [7, "bad"]
    assert data["kwargs"] == {}
    assert any("Traceback" in line for line in data["tb"])


def test_a_builtin_exception_comes_back_as_its_class_with_the_remote_text():
    error = wire.deserialize_remote_exception(_failure_of(KeyError("k")), [])
    assert type(error) is KeyError
    assert "Traceback" in str(error)


def test_an_allowed_exception_comes_back_as_a_remote_subclass():
    error = wire.deserialize_remote_exception(_failure_of(AppError(7)), [__name__])
    assert isinstance(error, AppError)
    assert type(error).__name__ == "AppError_Remote"
    assert type(error).__module__ == f"{__name__}_Remote"
    assert error.code == 7
    assert "Traceback" in str(error)


def test_the_remote_subclass_is_made_once_per_class():
    first = wire.deserialize_remote_exception(_failure_of(AppError(1)), [__name__])
    second = wire.deserialize_remote_exception(_failure_of(AppError(2)), [__name__])
    assert type(first) is type(second)


def test_an_exception_from_a_module_not_allowed_is_a_remote_error():
    error = wire.deserialize_remote_exception(_failure_of(AppError(7)), [])
    assert isinstance(error, rpcframe.RemoteError)
    assert error.exc_type == "AppError"
    assert "(7, '')" in error.value


def test_an_allowed_exception_that_cannot_be_rebuilt_is_a_remote_error():
    error = wire.deserialize_remote_exception(_failure_of(NotConstructible(1, 2, 3)), [__name__])
    assert isinstance(error, rpcframe.RemoteError)
    assert error.exc_type == "NotConstructible"


def test_a_failure_naming_a_non_exception_is_a_remote_error():
    data = json.dumps({"class": "dumps", "module": "json", "message": "x", "tb": [], "args": []})
    error = wire.deserialize_remote_exception(data, ["json"])
    assert isinstance(error, rpcframe.RemoteError)


def test_a_module_that_is_not_allowed_is_never_imported():
    data = json.dumps({"class": "X", "module": "antigravity", "message": "", "tb": []})
    import sys

    before = "antigravity" in sys.modules
    wire.deserialize_remote_exception(data, [])
    assert ("antigravity" in sys.modules) == before


def test_an_unreadable_failure_is_a_remote_error():
    error = wire.deserialize_remote_exception("{nope", [])
    assert isinstance(error, rpcframe.RemoteError)


def test_a_rebuilt_remote_exception_keeps_its_identity_when_sent_on():
    rebuilt = wire.deserialize_remote_exception(_failure_of(AppError(7)), [__name__])
    data = json.loads(_failure_of(rebuilt))
    assert (data["class"], data["module"]) == ("AppError", __name__)


def test_exception_arguments_json_cannot_hold_are_sent_as_text():
    class Opaque:
        def __str__(self):
            return "opaque!"

    data = json.loads(_failure_of(AppError(Opaque())))
    assert data["args"] == ["opaque!", ""]
