"""``rpcframe notify`` and ``rpcframe listen``, run in-process on fake://."""

from __future__ import annotations

import io
import json

import pytest

import rpcframe
from rpcframe.cli import main


@pytest.fixture(autouse=True)
def broker(conf):
    """Keeps the fake broker alive between the commands (each closes its own transport)."""
    with rpcframe.get_notification_transport(conf, "fake://") as transport:
        yield transport


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def notify(topic: str, event_type: str, payload: str = "{}", *extra: str) -> str:
    status, output = run(
        "notify", "--url", "fake://", "--topic", topic, "--event-type", event_type, *extra, payload
    )
    assert status == 0, output
    return output


def listen(topic: str, *extra: str) -> tuple[int, str]:
    return run("listen", "--url", "fake://", "--topic", topic, "--duration", "5", *extra)


def test_notify_sends_one_notification_and_says_so(topic):
    output = notify(topic, "compute.instance.create", '{"id": "i-1"}', "--publisher-id", "c.h1")
    assert output.startswith(f"sent INFO 'compute.instance.create' from 'c.h1' to {topic} on fake")
    assert "message_id" in output


def test_listen_pretty_prints_what_arrives(topic):
    notify(topic, "compute.instance.create", '{"id": "i-1"}', "--context", '{"user_id": "u-1"}')
    status, output = listen(topic, "--count", "1")
    assert status == 0
    first, context, payload, *_ = output.splitlines()
    assert "INFO" in first and "compute.instance.create" in first and "from rpcframe-cli" in first
    assert context.strip() == 'context: {"user_id": "u-1"}'
    assert payload.strip() == "payload: {"
    assert '"id": "i-1"' in output


def test_listen_prints_json_lines_with_the_sender(topic):
    notify(topic, "a.b", '{"x": 1}', "--priority", "error", "--publisher-id", "svc")
    status, output = listen(topic, "--count", "1", "--json")
    assert status == 0
    record = json.loads(output)
    assert (record["priority"], record["event_type"]) == ("error", "a.b")
    assert record["payload"] == {"x": 1}
    assert record["sender"]["name"] == "svc"


def test_the_context_loses_its_secrets_on_the_way(topic):
    notify(topic, "a.b", "{}", "--context", '{"user_id": "u", "auth_token": "secret"}')
    _, output = listen(topic, "--count", "1", "--json")
    assert json.loads(output)["context"] == {"user_id": "u"}


def test_listen_filters_by_event_type_pattern(topic):
    notify(topic, "network.port.up")
    notify(topic, "compute.instance.create")
    status, output = listen(topic, "--count", "1", "--json", "--event-type", "compute.*")
    assert status == 0
    assert [json.loads(line)["event_type"] for line in output.splitlines()] == [
        "compute.instance.create"
    ]


def test_listen_filters_by_priority(topic):
    notify(topic, "a.info")
    notify(topic, "a.error", "{}", "--priority", "error")
    status, output = listen(topic, "--count", "1", "--json", "--priority", "error")
    assert status == 0
    assert json.loads(output)["event_type"] == "a.error"


def test_listen_filters_by_publisher(topic):
    notify(topic, "a.b", "{}", "--publisher-id", "network.h1")
    notify(topic, "a.b", "{}", "--publisher-id", "compute.h7")
    status, output = listen(topic, "--count", "1", "--json", "--publisher", "compute.*")
    assert status == 0
    assert json.loads(output)["publisher_id"] == "compute.h7"


def test_listen_reports_when_fewer_arrived_than_asked(topic, capsys):
    status, output = run(
        "listen", "--url", "fake://", "--topic", topic, "--count", "1", "--duration", "0.1"
    )
    assert status == 1
    assert output == ""
    assert capsys.readouterr().err.endswith(
        "rpcframe listen: shown 0 of the 1 notifications asked for\n"
    )


def test_notify_refuses_a_payload_that_is_not_json(topic, capsys):
    with pytest.raises(SystemExit) as info:
        main(["notify", "--url", "fake://", "--event-type", "a.b", "{not json"])
    assert info.value.code == 2
    assert "the payload must be JSON" in capsys.readouterr().err


def test_notify_with_an_unknown_driver_is_a_clear_error(topic, capsys):
    status = main(["notify", "--url", "fake://", "--driver", "nosuch", "--event-type", "a.b"])
    assert status == 2
    assert "unknown notification driver" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["notify", "--event-type", "a.b", "--timeout", "0"], "--timeout: must be more than 0"),
        (["notify", "--event-type", "a.b", "--retry", "-2"], "--retry: must be at least -1"),
        (["listen", "--count", "0"], "--count: must be at least 1"),
        (["listen", "--duration", "0"], "--duration: must be more than 0"),
        (["listen", "--timeout", "-3"], "--timeout: must be more than 0"),
        (["notify", "--event-type", "a.b", "--priority", "loud"], "--priority: invalid choice"),
    ],
)
def test_a_value_that_makes_no_sense_is_a_usage_error(argv, said, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--url", "fake://"])
    assert info.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("command", ["notify", "listen"])
@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("rabbit://u:secret@[::1/", "transport URL 'rabbit://u:****@[::1/': Invalid IPv6"),
        ("rabbit://u:secret@h:port/", "bad port 'port'"),
        ("nosuch://", 'Failed to load transport driver "nosuch"'),
        ("fake://?bogus=1", "unknown transport URL parameter 'bogus'"),
    ],
)
def test_a_bad_url_is_one_line_and_status_2(command, url, said, capsys):
    required = {"notify": ["--event-type", "a.b"], "listen": ["--duration", "1"]}[command]
    status = main([command, "--url", url, *required])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"rpcframe {command}: ") and said in err
    assert err.count("\n") == 1 and "secret" not in err


def test_a_missing_configuration_file_is_a_usage_error(capsys):
    status = main(["notify", "--config-file", "/nonexistent/rpcframe.conf", "--event-type", "a"])
    assert status == 2
    assert capsys.readouterr().err.startswith("rpcframe notify: Failed to find some config files")


def test_an_event_type_that_cannot_be_sent_is_a_usage_error(capsys):
    status = main(["notify", "--url", "fake://", "--event-type", " "])
    assert status == 2
    assert capsys.readouterr().err == (
        "rpcframe notify: event_type must be a non-empty string, got ' '\n"
    )


@pytest.fixture
def broken_notifier(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(rpcframe, "Notifier", broken)


def test_an_unexpected_error_is_one_line_and_status_1(broken_notifier, capsys):
    status = main(["notify", "--url", "fake://", "--event-type", "a.b"])
    assert status == 1
    assert capsys.readouterr().err == (
        "rpcframe notify: unexpected error: RuntimeError: something nobody expected\n"
    )


def test_verbose_shows_the_traceback_of_an_unexpected_error(broken_notifier, capsys):
    status = main(["-v", "notify", "--url", "fake://", "--event-type", "a.b"])
    err = capsys.readouterr().err
    assert status == 1
    assert "Traceback" in err
    assert err.endswith(
        "rpcframe notify: unexpected error: RuntimeError: something nobody expected\n"
    )


def test_listen_says_on_stderr_when_it_listens(topic, capsys):
    status, _ = listen(topic, "--duration", "0.1")
    assert status == 0
    assert capsys.readouterr().err == (
        f"rpcframe listen: listening to {topic} on fake:///; Ctrl-C stops\n"
    )
