"""Target values and version compatibility."""

from __future__ import annotations

import dataclasses

import pytest

import rpcframe
from rpcframe import versions


def test_calling_a_target_returns_a_changed_copy():
    base = rpcframe.Target(topic="compute", version="5.0")
    direct = base(server="host-1")
    assert direct == rpcframe.Target(topic="compute", version="5.0", server="host-1")
    assert base.server is None


def test_a_target_cannot_be_changed_in_place():
    target = rpcframe.Target(topic="t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.topic = "other"  # type: ignore[misc]


def test_calling_a_target_with_an_unknown_field_is_a_type_error():
    with pytest.raises(TypeError, match="no field"):
        rpcframe.Target()(colour="red")


def test_targets_with_equal_fields_are_equal_and_hash_alike():
    assert rpcframe.Target(topic="t") == rpcframe.Target(topic="t")
    assert len({rpcframe.Target(topic="t"), rpcframe.Target(topic="t")}) == 1


def test_a_bad_version_string_is_an_invalid_target_naming_it():
    with pytest.raises(rpcframe.InvalidTarget, match="'1.x'"):
        rpcframe.Target(version="1.x")


def test_a_non_string_topic_is_an_invalid_target():
    with pytest.raises(rpcframe.InvalidTarget, match="topic must be a string"):
        rpcframe.Target(topic=5)  # type: ignore[arg-type]


def test_invalid_target_is_also_a_value_error():
    with pytest.raises(ValueError):
        rpcframe.Target(version="x")


def test_accepted_namespaces_include_the_legacy_ones():
    target = rpcframe.Target(namespace="new", legacy_namespaces=["old", None])
    assert target.accepted_namespaces == ["new", "old", None]


def test_repr_shows_the_set_fields():
    assert repr(rpcframe.Target(topic="t", server="s")) == "<Target topic=t, server=s>"


@pytest.mark.parametrize(
    ("implemented", "requested", "compatible"),
    [
        ("1.0", "1.0", True),
        ("1.5", "1.2", True),
        ("1.2", "1.5", False),
        ("2.0", "1.0", False),
        ("1.0", "2.0", False),
        ("1.2.3", "1.2.2", True),
        ("1.2.1", "1.2.2", False),
        ("1.2", "1.2.1", False),
        (None, "9.9", True),
        ("1.0", None, False),
    ],
)
def test_version_compatibility_follows_the_oslo_rule(implemented, requested, compatible):
    assert versions.is_compatible(implemented, requested) is compatible


@pytest.mark.parametrize("bad", ["1", "1.2.3.4", "a.b", "", "1.-1", 1.0])
def test_bad_version_strings_are_refused(bad):
    with pytest.raises(ValueError, match="MAJOR.MINOR|string"):
        versions.parse_version(bad)
