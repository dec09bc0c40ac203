"""Target values and version compatibility."""

from __future__ import annotations

import pytest

import rpcframe
import rpcframe.target
from rpcframe import versions


def test_calling_a_target_returns_a_changed_copy():
    base = rpcframe.Target(topic="compute", version="5.0")
    direct = base(server="host-1")
    assert direct == rpcframe.Target(topic="compute", version="5.0", server="host-1")
    assert base.server is None


def test_a_target_can_be_changed_in_place_as_in_oslo():
    target = rpcframe.Target(topic="t")
    target.server = "host-1"
    assert target == rpcframe.Target(topic="t", server="host-1")


def test_calling_a_target_with_an_unknown_field_is_a_type_error():
    with pytest.raises(TypeError, match="colour"):
        rpcframe.Target()(colour="red")


def test_targets_with_equal_fields_are_equal_but_hash_by_identity():
    a, b = rpcframe.Target(topic="t"), rpcframe.Target(topic="t")
    assert a == b and not a != b
    assert len({a, b}) == 2  # mutable, so hashed as oslo hashes it: by identity


def test_a_target_is_not_equal_to_another_kind_of_object():
    assert rpcframe.Target(topic="t") != {"topic": "t"}


def test_anything_is_accepted_when_a_target_is_built_as_in_oslo():
    target = rpcframe.Target(topic=5, version="1.x")  # type: ignore[arg-type]
    assert target.topic == 5 and target.version == "1.x"


def test_a_bad_version_fails_when_checked_naming_it():
    with pytest.raises(rpcframe.InvalidTarget, match="'1.x'") as caught:
        rpcframe.target.check_version(rpcframe.Target(version="1.x"))
    assert isinstance(caught.value, ValueError)


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
