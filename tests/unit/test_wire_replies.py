"""Reply bodies: results, failures and heartbeats (rpcframe.wire.replies)."""

from __future__ import annotations

import pytest

from rpcframe import exceptions, wire


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
