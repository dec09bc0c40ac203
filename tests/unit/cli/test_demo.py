"""``rpcframe demo`` on the embedded transport: what it shows, and that it ends well."""

from __future__ import annotations

import io

import pytest

from rpcframe.cli import main

pytestmark = pytest.mark.timeout(60)


def run_demo() -> tuple[int, list[str]]:
    out = io.StringIO()
    status = main(["demo", "--calls", "20"], out=out)
    return status, out.getvalue().splitlines()


def test_the_demo_needs_no_broker_and_ends_well():
    status, lines = run_demo()
    assert status == 0, lines
    assert lines[0].startswith("rpcframe demo on fake://")


def test_the_demo_shows_calls_a_cast_and_the_errors_a_broker_would_raise():
    _status, lines = run_demo()
    shown = [line.split("->", 1)[1].strip() for line in lines[1:]]
    assert shown[0] == "5"
    assert shown[2:6] == [
        "ok",
        "server got 'world'",
        "ZeroDivisionError: division by zero",
        "RemoteError(UnsupportedVersion)",
    ]
    assert shown[6].endswith("us each)")
