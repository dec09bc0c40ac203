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


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--calls", "-5", "must be at least 0"),
        ("--calls", "many", "not a whole number"),
        ("--timeout", "0", "must be more than 0 seconds"),
        ("--timeout", "-1", "must be more than 0 seconds"),
    ],
)
def test_the_demo_refuses_a_value_that_makes_no_sense_as_a_usage_error(option, value, said, capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", option, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {said}" in err
    assert "Traceback" not in err


def test_the_demo_with_zero_calls_shows_everything_but_the_rate():
    out = io.StringIO()
    status = main(["demo", "--calls", "0"], out=out)
    lines = out.getvalue().splitlines()
    assert status == 0
    assert len(lines) == 8
    assert lines[-1].endswith("-> not timed (--calls 0)")
