"""``rpcframe call``, ``cast`` and ``stream``, run in-process against a server on fake://."""

from __future__ import annotations

import io
import json
import threading

import pytest

from rpcframe.cli import main

pytestmark = pytest.mark.timeout(60)

#: How long a test waits for what a server does in its own thread.
WAIT = 10.0

#: The servers' transport (tests/unit/conftest.py) is strict; so is the
#: command's, as production is. (A lenient fake:// sends a fanout cast to
#: another fanout exchange than a strict server listens on.)
URL = "fake://?strict=true"


class Service:
    """The endpoint the commands talk to; each cast and closed stream sets an event."""

    def __init__(self, name="server"):
        self.name = name
        self.cast_arrived = threading.Event()
        self.casts = []
        self.generator_closed = threading.Event()
        self.release = threading.Event()

    def add(self, ctxt, a, b):
        return a + b

    def echo(self, ctxt, **kwargs):
        return kwargs

    def hello(self, ctxt, name):
        return f"hello {name}"

    def whoami(self, ctxt):
        return ctxt.get("user")

    def divide(self, ctxt, a, b):
        return a / b

    def slow(self, ctxt):
        self.release.wait(WAIT)

    def remember(self, ctxt, **kwargs):
        self.casts.append((self.name, kwargs))
        self.cast_arrived.set()

    def count(self, ctxt, n):
        try:
            for i in range(n):
                yield {"i": i}
        finally:
            self.generator_closed.set()

    def fail_after(self, ctxt, n):
        yield from range(n)
        raise KeyError("no more")

    def forever(self, ctxt):
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            self.generator_closed.set()


@pytest.fixture
def service(serve):
    endpoint = Service()
    server = serve(endpoint)
    yield endpoint
    endpoint.release.set()  # a slow call in flight lets the server stop
    del server


def run(*argv, out=None):
    out = out if out is not None else io.StringIO()
    status = main(list(argv), out=out)
    return status, out.getvalue()


def call(topic, *argv):
    return run("call", "--url", URL, "--topic", topic, *argv)


def stream(topic, *argv, out=None):
    return run("stream", "--url", URL, "--topic", topic, *argv, out=out)


# -- call ------------------------------------------------------------------------------


def test_call_prints_the_result(service, topic):
    assert call(topic, "--method", "add", "a=2", "b=3") == (0, "5\n")


def test_call_prints_a_string_result_as_it_is(service, topic):
    assert call(topic, "--method", "hello", "name=web-1") == (0, "hello web-1\n")


def test_call_with_json_prints_the_result_as_json(service, topic):
    status, output = call(topic, "--method", "hello", "name=web-1", "--json")
    assert status == 0
    assert json.loads(output) == "hello web-1"


def test_key_value_pairs_are_json_when_they_read_as_json_and_strings_otherwise(service, topic):
    status, output = call(
        topic, "--method", "echo", "n=1", "f=1.5", "t=true", "l=[1, 2]", "s=web-1", "e=", "--json"
    )
    assert status == 0
    assert json.loads(output) == {"n": 1, "f": 1.5, "t": True, "l": [1, 2], "s": "web-1", "e": ""}


def test_a_quoted_json_string_stays_a_string(service, topic):
    status, output = call(topic, "--method", "echo", 'v="1"', "--json")
    assert status == 0
    assert json.loads(output) == {"v": "1"}


def test_args_and_pairs_are_merged(service, topic):
    status, output = call(topic, "--method", "add", "--args", '{"a": 40}', "b=2")
    assert (status, output) == (0, "42\n")


def test_the_context_reaches_the_endpoint(service, topic):
    status, output = call(topic, "--method", "whoami", "--context", '{"user": "alice"}')
    assert (status, output) == (0, "alice\n")


def test_call_reaches_the_server_named(serve, topic):
    serve(Service("one"), server="one")
    serve(Service("two"), server="two")
    status, output = call(topic, "--server", "two", "--method", "echo", "who=x", "--json")
    assert (status, json.loads(output)) == (0, {"who": "x"})


def test_a_remote_error_is_one_line_naming_its_class_and_message(service, topic, capsys):
    status, output = call(topic, "--method", "divide", "a=1", "b=0")
    assert status == 1
    assert output == ""
    assert capsys.readouterr().err == (
        "rpcframe call: divide raised ZeroDivisionError on server server: division by zero\n"
    )


def test_an_unknown_method_is_a_remote_no_such_method(service, topic, capsys):
    status, _ = call(topic, "--method", "nosuch")
    assert status == 1
    err = capsys.readouterr().err
    assert err.startswith("rpcframe call: nosuch raised NoSuchMethod on server server: ")
    assert err.count("\n") == 1


def test_a_call_without_a_reply_in_time_exits_3(service, topic, capsys):
    status, output = call(topic, "--method", "slow", "--timeout", "0.2")
    assert (status, output) == (3, "")
    assert capsys.readouterr().err == "rpcframe call: no reply to slow within 0.2 s\n"


def test_a_call_to_a_topic_nobody_serves_times_out(service, capsys):
    status, _ = call("nobody_serves_this", "--method", "add", "--timeout", "0.2")
    assert status == 3
    assert "no reply to add within 0.2 s" in capsys.readouterr().err


# -- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--args", "{bad"], "argument --args: not JSON (Expecting property name"),
        (["--args", "[1, 2]"], "argument --args: must be a JSON object of arguments, got list"),
        (["--context", "nope"], "argument --context: not JSON"),
        (["=1"], "an argument is key=value with a name for its key, got '=1'"),
        (["novalue"], "an argument is key=value with a name for its key, got 'novalue'"),
        (["--timeout", "0"], "--timeout: must be more than 0"),
    ],
)
def test_a_malformed_argument_is_a_usage_error(argv, said, capsys):
    with pytest.raises(SystemExit) as info:
        main(["call", "--url", URL, "--topic", "t", "--method", "m", *argv])
    assert info.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("command", ["call", "cast", "stream"])
def test_topic_and_method_are_required(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--url", "fake://"])
    assert info.value.code == 2
    assert "the following arguments are required: --topic, --method" in capsys.readouterr().err


def test_an_argument_given_twice_is_a_usage_error(capsys):
    status, _ = call("t", "--method", "add", "--args", '{"a": 1}', "a=2")
    assert status == 2
    assert capsys.readouterr().err == "rpcframe call: argument 'a' is given twice\n"


def test_a_window_out_of_range_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["stream", "--url", URL, "--topic", "t", "--method", "m", "--window", "0"])
    assert info.value.code == 2
    assert "--window: must be at least 1" in capsys.readouterr().err


def test_a_bad_url_is_one_line_and_status_2(capsys):
    status, _ = call("t", "--method", "m", "--url", "nosuch://")
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("rpcframe call: ") and 'Failed to load transport driver "nosuch"' in err


# -- cast ------------------------------------------------------------------------------------


def test_cast_hands_the_request_over_and_says_so(service, topic):
    status, output = run("cast", "--url", URL, "--topic", topic, "--method", "remember", "x=1")
    assert (status, output) == (0, f"cast remember to {topic} on fake:///?strict=true\n")
    assert service.cast_arrived.wait(WAIT)
    assert service.casts == [("server", {"x": 1})]


def test_cast_with_json_describes_what_was_sent(service, topic):
    status, output = run("cast", "--url", URL, "--topic", topic, "--method", "remember", "--json")
    assert status == 0
    assert json.loads(output) == {
        "method": "remember",
        "topic": topic,
        "server": None,
        "fanout": False,
        "url": "fake:///?strict=true",
    }


def test_a_fanout_cast_reaches_every_server(serve, topic):
    one, two = Service("one"), Service("two")
    serve(one, server="one")
    serve(two, server="two")
    status, output = run(
        "cast", "--url", URL, "--topic", topic, "--fanout", "--method", "remember", "y=2"
    )
    assert status == 0
    assert output == f"cast remember to every server of {topic} on fake:///?strict=true\n"
    assert one.cast_arrived.wait(WAIT) and two.cast_arrived.wait(WAIT)
    assert one.casts + two.casts == [("one", {"y": 2}), ("two", {"y": 2})]


# -- stream ----------------------------------------------------------------------------------


def test_stream_prints_each_chunk_on_its_own_line(service, topic):
    status, output = stream(topic, "--method", "count", "n=3")
    assert status == 0
    assert output == '{"i": 0}\n{"i": 1}\n{"i": 2}\n'


def test_stream_with_json_prints_json_lines(service, topic):
    status, output = stream(topic, "--method", "count", "n=2", "--json")
    assert status == 0
    assert [json.loads(line) for line in output.splitlines()] == [{"i": 0}, {"i": 1}]


def test_stream_with_a_window_of_one_still_gets_every_chunk(service, topic):
    status, output = stream(topic, "--method", "count", "n=5", "--window", "1")
    assert status == 0
    assert len(output.splitlines()) == 5


def test_a_stream_that_raises_prints_its_chunks_then_one_line(service, topic, capsys):
    # A window of 2 credits the server after every chunk. A stream that ends
    # in an error sends no last credit, and the server's worker would wait
    # for it until the call's deadline, which the teardown would wait for.
    status, output = stream(topic, "--method", "fail_after", "n=2", "--window", "2")
    assert status == 1
    assert output == "0\n1\n"
    assert capsys.readouterr().err == (
        "rpcframe stream: fail_after raised KeyError on server server: 'no more' (after 2 chunks)\n"
    )


def test_streaming_a_method_that_does_not_stream_says_so(service, topic, capsys):
    status, output = stream(topic, "--method", "add", "a=1", "b=2")
    assert (status, output) == (1, "")
    assert capsys.readouterr().err == (
        "rpcframe stream: add does not stream: the server answered with one reply "
        "(use rpcframe call for it)\n"
    )


class InterruptedAt(io.StringIO):
    """An output stream on which Ctrl-C is pressed when ``text`` is written (once)."""

    def __init__(self, text):
        super().__init__()
        self.text = text

    def write(self, s):
        if self.text is not None and self.text in s:
            self.text = None
            raise KeyboardInterrupt
        return super().write(s)


def test_ctrl_c_closes_the_stream_on_the_server_and_exits_130(service, topic, capsys):
    out = InterruptedAt("3")
    status, output = stream(topic, "--method", "forever", out=out)
    assert status == 130
    assert output == "0\n1\n2\n"
    assert capsys.readouterr().err == "rpcframe stream: interrupted\n"
    assert service.generator_closed.wait(WAIT)  # the server was told, and closed it
