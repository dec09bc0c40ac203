"""``rpcframe ping``, run in-process against servers on fake://."""

from __future__ import annotations

import io
import json

import pytest

from rpcframe.cli import main

pytestmark = pytest.mark.timeout(60)

URL = "fake://?strict=true"  # as the servers' transport (tests/unit/conftest.py)


class Nothing:
    """An endpoint with no methods: the server answers only what the dispatcher adds."""


@pytest.fixture
def pingable(transport, serve):
    """Start servers that answer pings (``rpc_ping_enabled``)."""
    transport.conf.set_override("rpc_ping_enabled", True)

    def start(server="server"):
        return serve(Nothing(), server=server)

    return start


def ping(topic, *argv):
    out = io.StringIO()
    status = main(["ping", "--url", URL, "--topic", topic, *argv], out=out)
    return status, out.getvalue()


def test_ping_says_which_server_answered_and_how_fast(pingable, topic):
    pingable("host1")
    status, output = ping(topic)
    assert status == 0
    assert output.startswith("pong from host1 in ") and output.endswith(" ms\n")


def test_ping_with_json_gives_the_server_and_the_latency(pingable, topic):
    pingable("host1")
    status, output = ping(topic, "--json")
    record = json.loads(output)
    assert status == 0
    assert (record["seq"], record["server"]) == (1, "host1")
    assert record["latency_ms"] > 0


def test_ping_reaches_the_server_named(pingable, topic):
    pingable("host1")
    pingable("host2")
    status, output = ping(topic, "--server", "host2", "--count", "3", "--json")
    assert status == 0
    assert [json.loads(line)["server"] for line in output.splitlines()] == ["host2"] * 3


def test_count_pings_end_with_a_summary_per_server(pingable, topic):
    pingable("host1")
    status, output = ping(topic, "--count", "3")
    lines = output.splitlines()
    assert status == 0
    assert [line.split(":")[0] for line in lines[:3]] == ["1", "2", "3"]
    assert lines[3] == f"--- 3 pings to {topic}, 3 answered, 0 lost"
    assert lines[4].startswith("host1: 3 pongs, min/avg/max ")


def test_watch_shows_every_server_heard_so_far(pingable, topic):
    pingable("host1")
    pingable("host2")
    status, output = ping(topic, "--watch", "--interval", "0.01", "--count", "4")
    assert status == 0
    rounds = output.splitlines()[:4]
    answered = {line.split("pong from ")[1].split()[0] for line in rounds}
    assert answered == {"host1", "host2"}  # the topic's servers take turns
    assert "| host1 " in rounds[-1] and " host2 " in rounds[-1]


def test_a_server_without_ping_enabled_is_told_to_enable_it(serve, topic, capsys):
    serve(Nothing(), server="host1")
    status, output = ping(topic)
    assert (status, output) == (1, "")
    assert capsys.readouterr().err == (
        "rpcframe ping: the server host1 does not answer pings: "
        "set rpc_ping_enabled in its configuration\n"
    )


def test_a_ping_nobody_answers_exits_3(transport, topic, capsys):
    status, output = ping(topic, "--timeout", "0.2")
    assert (status, output) == (3, "")
    assert capsys.readouterr().err == (
        "rpcframe ping: no reply to oslo_rpc_server_ping within 0.2 s\n"
    )


def test_several_pings_nobody_answers_are_counted_as_lost(transport, topic, capsys):
    status, output = ping(topic, "--timeout", "0.1", "--count", "2")
    assert status == 3
    assert output.splitlines() == [
        "1: no pong within 0.1 s",
        "2: no pong within 0.1 s",
        f"--- 2 pings to {topic}, 0 answered, 2 lost",
    ]
    assert capsys.readouterr().err == "rpcframe ping: 2 of 2 pings got no reply within 0.1 s\n"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--count", "0"], "--count: must be at least 1"),
        (["--interval", "0"], "--interval: must be more than 0"),
        (["--timeout", "-1"], "--timeout: must be more than 0"),
    ],
)
def test_a_value_that_makes_no_sense_is_a_usage_error(argv, said, capsys):
    with pytest.raises(SystemExit) as info:
        main(["ping", "--url", URL, "--topic", "t", *argv])
    assert info.value.code == 2
    assert said in capsys.readouterr().err
