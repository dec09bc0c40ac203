"""The envelope, the JSON inside it and message ids (rpcframe.wire.envelope)."""

from __future__ import annotations

import datetime
import decimal
import json
import uuid

import pytest

from rpcframe import exceptions, wire


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


DEEP = b"[" * 100_000


@pytest.mark.parametrize(
    "parse", [wire.decode, wire.parse_request, wire.parse_reply, wire.parse_notification]
)
@pytest.mark.parametrize(
    "body",
    [DEEP, b'{"a": ' + DEEP, wire.encode({"x": 1}).replace(b'{\\"x\\": 1}', DEEP)],
    ids=["nested-body", "nested-value", "nested-inside-the-envelope"],
)
def test_deeply_nested_json_is_a_malformed_message(parse, body):
    with pytest.raises(exceptions.MalformedMessage, match="nested too deeply"):
        parse(body)
