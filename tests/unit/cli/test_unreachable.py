"""A broker that refuses or never answers: every subcommand ends in time with one line."""

from __future__ import annotations

import contextlib

import pytest

from tests.commands import REFUSED_SHOWN, REFUSED_URL, SilentPort

pytestmark = pytest.mark.timeout(120)

#: Seconds a command may take beyond what it was given: starting Python,
#: closing its transport (at most 5 s), a loaded machine.
BOUND = 8.0

#: Each command, with the seconds it is given to reach the broker.
GIVEN = 2
COMMANDS = {
    "notify --timeout": ["notify", "--event-type", "a.b", "--timeout", str(GIVEN)],
    "listen --duration": ["listen", "--duration", str(GIVEN)],
    "listen --timeout": ["listen", "--timeout", str(GIVEN)],
    "demo --timeout": ["demo", "--timeout", str(GIVEN)],
    "call --timeout": ["call", "--topic", "t", "--method", "m", "--timeout", str(GIVEN)],
    "cast --timeout": ["cast", "--topic", "t", "--method", "m", "--timeout", str(GIVEN)],
    "stream --timeout": ["stream", "--topic", "t", "--method", "m", "--timeout", str(GIVEN)],
    "ping --timeout": ["ping", "--topic", "t", "--timeout", str(GIVEN)],
}


@pytest.fixture(params=["refusing", "silent"])
def unreachable_url(request):
    """A broker that refuses connections, or one that accepts them and never answers."""
    if request.param == "refusing":
        yield REFUSED_URL
        return
    with contextlib.closing(SilentPort()) as port:
        yield port.url


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_ends_in_time_with_one_line_when_the_broker_cannot_be_reached(
    command, unreachable_url, name
):
    subcommand, *argv = COMMANDS[name]
    cmd = command(subcommand, "--url", unreachable_url, *argv)
    status, elapsed = cmd.finish()
    assert status == 1
    assert len(cmd.err) == 1, cmd.err
    assert cmd.err[0].startswith(f"rpcframe {subcommand}: cannot reach rabbit://guest:****@")
    assert cmd.out == []
    assert elapsed < GIVEN + BOUND


def test_notify_says_which_broker_it_cannot_reach_and_why(command):
    cmd = command("notify", "--url", REFUSED_URL, "--event-type", "a.b")
    status, _ = cmd.finish()
    assert status == 1
    assert cmd.err[0].startswith(f"rpcframe notify: cannot reach {REFUSED_SHOWN}: ")
    assert cmd.err[0].rstrip().endswith("Connection refused")
