"""Schemas: registered in code or by entry point, checked before sending."""

from __future__ import annotations

import sys
import textwrap

import pytest

import rpcframe
from rpcframe import exceptions
from rpcframe.notify import drivers, schemas

CREATE = {
    "type": "object",
    "required": ["instance_id", "flavor"],
    "properties": {
        "instance_id": {"type": "string"},
        "flavor": {
            "type": "object",
            "properties": {"vcpus": {"type": "integer", "minimum": 1}},
        },
        "tags": {"type": "array", "items": {"type": "string"}},
    },
}


@pytest.fixture
def registry():
    registry = schemas.SchemaRegistry(entry_points=False)
    registry.register("compute.instance.create", CREATE)
    return registry


def test_a_valid_payload_is_sent(transport, registry):
    notifier = rpcframe.Notifier(transport, driver="test", schemas=registry)
    notifier.info({}, "compute.instance.create", {"instance_id": "i-1", "flavor": {"vcpus": 2}})
    assert len(drivers.NOTIFICATIONS) == 1


def test_an_invalid_payload_raises_naming_the_event_and_path_and_sends_nothing(transport, registry):
    notifier = rpcframe.Notifier(transport, driver="test", schemas=registry)
    with pytest.raises(exceptions.ValidationError) as info:
        notifier.info({}, "compute.instance.create", {"instance_id": "i-1", "flavor": {"vcpus": 0}})
    error = info.value
    assert error.event_type == "compute.instance.create"
    assert error.path == ("flavor", "vcpus")
    assert "'compute.instance.create'" in str(error) and "payload['flavor']['vcpus']" in str(error)
    assert "minimum" in error.reason or "less than" in error.reason
    assert drivers.NOTIFICATIONS == []


def test_a_missing_required_key_is_reported_at_the_payload(registry):
    with pytest.raises(exceptions.ValidationError, match="'flavor' is a required property") as info:
        registry.validate("compute.instance.create", {"instance_id": "i-1"})
    assert info.value.path == ()


def test_an_index_in_the_path_names_the_list_item(registry):
    with pytest.raises(exceptions.ValidationError) as info:
        registry.validate(
            "compute.instance.create",
            {"instance_id": "i", "flavor": {}, "tags": ["ok", 3]},
        )
    assert info.value.path == ("tags", 1)


def test_validation_error_is_a_messaging_exception_and_an_invalid_notification():
    assert issubclass(exceptions.ValidationError, exceptions.InvalidNotification)
    assert issubclass(exceptions.ValidationError, rpcframe.MessagingException)


def test_event_types_without_a_schema_are_not_checked(transport, registry):
    rpcframe.Notifier(transport, driver="test", schemas=registry).info({}, "other", "anything")
    assert len(drivers.NOTIFICATIONS) == 1


def test_the_schema_sees_the_payload_as_it_travels(transport):
    registry = schemas.SchemaRegistry(
        {"t": {"type": "object", "properties": {"when": {"type": "string"}}}},
        entry_points=False,
    )
    import datetime

    notifier = rpcframe.Notifier(transport, driver="test", schemas=registry)
    notifier.info({}, "t", {"when": datetime.datetime(2024, 1, 1)})
    assert len(drivers.NOTIFICATIONS) == 1


def test_an_invalid_schema_is_refused_when_registered():
    registry = schemas.SchemaRegistry(entry_points=False)
    with pytest.raises(exceptions.ConfigurationError, match="not a valid JSON Schema"):
        registry.register("t", {"type": "no-such-type"})


def test_unregister_stops_checking(registry):
    registry.unregister("compute.instance.create")
    registry.validate("compute.instance.create", {})
    assert "compute.instance.create" not in registry


def test_the_default_registry_is_what_notifiers_use(transport):
    schemas.register("tests.default.registry", {"type": "object", "required": ["x"]})
    try:
        with pytest.raises(exceptions.ValidationError):
            rpcframe.Notifier(transport, driver="test").info({}, "tests.default.registry", {})
    finally:
        schemas.default_registry.unregister("tests.default.registry")


@pytest.fixture
def schema_package(tmp_path, monkeypatch):
    """An installed-looking package declaring schemas under the entry point group."""
    (tmp_path / "demo_schemas.py").write_text(
        textwrap.dedent(
            """
            VOLUME_CREATED = {"type": "object", "required": ["volume_id"]}

            def image_uploaded():
                return {"type": "object", "required": ["image_id"]}
            """
        ),
        encoding="utf-8",
    )
    dist = tmp_path / "demo_schemas-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-schemas\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rpcframe.notify.schemas]\n"
        "volume.created = demo_schemas:VOLUME_CREATED\n"
        "image.uploaded = demo_schemas:image_uploaded\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("demo_schemas", None)


def test_schemas_are_loaded_from_entry_points(schema_package):
    registry = schemas.SchemaRegistry()
    assert registry.event_types() == ["image.uploaded", "volume.created"]
    with pytest.raises(exceptions.ValidationError, match="'volume_id' is a required property"):
        registry.validate("volume.created", {})
    with pytest.raises(exceptions.ValidationError, match="'image_id' is a required property"):
        registry.validate("image.uploaded", {})


def test_a_schema_registered_in_code_wins_over_an_entry_point(schema_package):
    registry = schemas.SchemaRegistry({"volume.created": {"type": "object"}})
    registry.validate("volume.created", {})


def test_without_jsonschema_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # makes "import jsonschema" fail
    registry = schemas.SchemaRegistry(entry_points=False)
    with pytest.raises(exceptions.ConfigurationError, match=r"pip install 'rpcframe\[schemas\]'"):
        registry.register("t", {"type": "object"})


def test_without_jsonschema_and_without_schemas_nothing_changes(transport, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    registry = schemas.SchemaRegistry(entry_points=False)
    rpcframe.Notifier(transport, driver="test", schemas=registry).info({}, "a.b", {})
    assert len(drivers.NOTIFICATIONS) == 1
