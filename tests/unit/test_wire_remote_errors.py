"""The remote-error codec: oslo.messaging's failure format (rpcframe.wire.remote_errors)."""

from __future__ import annotations

import json

import rpcframe
from rpcframe import wire


class AppError(Exception):
    def __init__(self, code, detail=""):
        super().__init__(code, detail)
        self.code = code


class NotConstructible(Exception):
    def __init__(self, a, b, c):
        super().__init__(a)


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
