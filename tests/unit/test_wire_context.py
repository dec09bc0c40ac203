"""The context as ``_context_<key>`` entries (rpcframe.wire.context)."""

from __future__ import annotations

import pytest

from rpcframe import wire


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
