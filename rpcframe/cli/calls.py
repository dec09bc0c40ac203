"""``rpcframe call``, ``rpcframe cast`` and ``rpcframe stream``: RPC from the command line.

``rpcframe call`` calls a method and prints its result, ``rpcframe cast``
sends a request that gets no reply, ``rpcframe stream`` prints what a
streaming (generator) method yields, a chunk per line, as it arrives::

    rpcframe call --url rabbit://guest:guest@localhost/ --topic compute \\
        --method add a=1 b=2
    rpcframe cast --topic compute --fanout --method refresh --args '{"full": true}'
    rpcframe stream --topic compute --server host1 --method tail lines=100 --json

A method's arguments come from ``--args`` (a JSON object) and ``key=value``
pairs, whose value is read as JSON if it is JSON and as a string otherwise
(``a=1`` is the number 1, ``name=web-1`` the string ``"web-1"``,
``name='"1"'`` the string ``"1"``).

This module also holds what :mod:`rpcframe.cli.ping` shares with them: the
options naming a target, the transport and client they open, and sending
under a deadline, since a command must never hang on a broker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

import rpcframe
from rpcframe import exceptions
from rpcframe.cli import config, deadline, failures, values
from rpcframe.rpc import handles

__all__ = [
    "DEFAULT_TIMEOUT",
    "add_commands",
    "add_target_options",
    "no_reply",
    "Session",
    "opened",
    "remote_error",
    "show",
]

T = TypeVar("T")

#: Seconds a call, a stream or a ping waits by default, sending included.
DEFAULT_TIMEOUT = 30.0

#: What a client raises when the broker did not take a request: the broker
#: cannot be reached, rather than refusing this one request.
_UNREACHABLE = (
    exceptions.MessagingTimeout,
    exceptions.MessageDeliveryFailure,
    exceptions.TransportBroken,
)


# -- what call, cast, stream and ping share ------------------------------------------------


def add_target_options(parser: argparse.ArgumentParser, timeout_what: str) -> None:
    """The options every RPC subcommand takes: where to send, and how long to wait."""
    parser.add_argument(
        "--url",
        help="transport URL (default: [DEFAULT] transport_url of --config-file, "
        "else rabbit://localhost)",
    )
    config.add_config_file(parser)
    parser.add_argument("--topic", required=True, help="the servers' topic")
    parser.add_argument("--server", help="send to this server of the topic only")
    parser.add_argument("--exchange", help="default: control_exchange")
    values.add_timeout(parser, timeout_what, DEFAULT_TIMEOUT)
    parser.add_argument("--json", action="store_true", help="print JSON for programs to read")


class Session:
    """A client for the target the options name, and the sending of its requests.

    :attr:`client` is the client; :meth:`send` hands it a request under a
    deadline and notes when it had to give up on one, which decides how
    :func:`opened` closes the transport.
    """

    def __init__(self, client: rpcframe.RPCClient) -> None:
        self.client = client
        self.abandoned = False

    def send(self, seconds: float, what: str, request: Callable[[], T]) -> T:
        """``request()`` (it hands a request to the broker) within ``seconds``.

        Raises CommandFailed ("cannot reach ...") if the broker did not take
        it in time or at all. The library may try to connect for longer than
        a command may wait (opening the reply queue does), so the request
        runs under :func:`~rpcframe.cli.deadline.within`.
        """
        url = self.client.transport.url
        try:
            return deadline.within(seconds, what, request)
        except deadline.Overdue as exc:
            self.abandoned = True
            raise failures.cannot_reach(url, exc) from None
        except exceptions.ClientSendError as exc:
            cause = exc.__cause__
            if isinstance(cause, _UNREACHABLE):
                raise failures.cannot_reach(url, cause) from None
            raise failures.CommandFailed(f"not sent to {url.masked()}: {cause or exc}") from None
        except _UNREACHABLE as exc:
            raise failures.cannot_reach(url, exc) from None


@contextlib.contextmanager
def opened(args: argparse.Namespace) -> Iterator[Session]:
    """A :class:`Session` on a transport that is closed on the way out.

    Closing the transport is also what ends the connection attempts of a
    request given up on. While the library opens its reply queue, closing
    waits for that to end (up to the library's own reconnection limit, a
    minute on RabbitMQ), so after a request given up on the transport is
    closed without waiting (:func:`~rpcframe.cli.deadline.abandon`).
    """
    conf = config.load(args.config_file)
    transport = rpcframe.get_rpc_transport(conf, args.url)
    session = None
    try:
        # The broker's driver waits to connect for at most rpc_response_timeout.
        transport.conf.set_override("rpc_response_timeout", args.timeout)
        target = rpcframe.Target(
            topic=args.topic,
            server=args.server,
            exchange=args.exchange,
            namespace=getattr(args, "namespace", None),
            version=getattr(args, "version", None),
            fanout=getattr(args, "fanout", None) or None,
        )
        session = Session(rpcframe.get_rpc_client(transport, target, timeout=args.timeout))
        yield session
    finally:
        if session is not None and session.abandoned:
            deadline.abandon("close the transport", transport.cleanup)
        else:
            deadline.settle("close the transport", transport.cleanup)


def remote_error(method: str, exc: BaseException, server: str | None = None) -> str:
    """One line naming the exception a remote method raised, its class and message.

    A real transport hands it over as a RemoteError (its class name in
    ``exc_type``), or, for builtins and allowed modules, rebuilt as a
    ``<Name>_Remote`` class whose message ends with the remote traceback;
    only the message's first line is kept.
    """
    if isinstance(exc, exceptions.RemoteError):
        name, message = exc.exc_type, str(exc.value)
    else:
        name = type(exc).__name__.removesuffix("_Remote")
        # A builtin cannot change class: its first argument carries the text
        # (str() of a KeyError would quote it, traceback and all).
        first_arg = exc.args[0] if exc.args else None
        remote = name != type(exc).__name__ or not isinstance(first_arg, str)
        message = str(exc) if remote else str(first_arg)
    first = (message.strip().splitlines() or [""])[0]
    where = f" on server {server}" if server else ""
    return f"{method} raised {name}{where}: {first}" if first else f"{method} raised {name}{where}"


def no_reply(what: str, seconds: float) -> failures.CommandFailed:
    """The failure of a request the broker took that got no reply in time."""
    return failures.CommandFailed(f"no reply {what} within {seconds:g} s", failures.TIMED_OUT)


def show(value: Any, as_json: bool) -> str:
    """A value as a line: JSON with ``--json``, else a string as it is and the rest as JSON."""
    if isinstance(value, str) and not as_json:
        return value
    return json.dumps(value, sort_keys=True, default=str)


# -- the method's arguments -------------------------------------------------------------------


def _json_object(text: str) -> dict[str, Any]:
    """An argparse type: ``--args``, a JSON object."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object of arguments, got {type(value).__name__}: {text!r}"
        )
    return value


def _pair(text: str) -> tuple[str, Any]:
    """An argparse type: ``key=value``, the value JSON if it reads as JSON, else a string."""
    key, equals, raw = text.partition("=")
    if not equals or not key.isidentifier():
        raise argparse.ArgumentTypeError(
            f"an argument is key=value with a name for its key, got {text!r}"
        )
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The method's arguments: ``--args`` and the ``key=value`` pairs, each named once."""
    kwargs = dict(args.args or {})
    for key, value in args.pairs:
        if key in kwargs:
            raise failures.CommandFailed(f"argument {key!r} is given twice", failures.USAGE)
        kwargs[key] = value
    return kwargs


# -- rpcframe call ------------------------------------------------------------------------


def _call(args: argparse.Namespace, out: TextIO) -> int:
    kwargs = _arguments(args)
    with opened(args) as session:
        client = session.client
        handle = session.send(
            args.timeout,
            "send the call",
            lambda: client.call_async(args.context, args.method, announce_after=0, **kwargs),
        )
        try:
            result = handle.result()
        except exceptions.MessagingTimeout:
            raise no_reply(f"to {args.method}", args.timeout) from None
        except Exception as exc:  # noqa: BLE001 - whatever the endpoint raised, in one line
            raise failures.CommandFailed(remote_error(args.method, exc, handle.server)) from None
        finally:
            handle.cancel()  # Ctrl-C: the server is told; after the reply, nothing happens
    out.write(show(result, args.json) + "\n")
    return failures.DONE


# -- rpcframe cast ------------------------------------------------------------------------


def _cast(args: argparse.Namespace, out: TextIO) -> int:
    kwargs = _arguments(args)
    with opened(args) as session:
        client = session.client
        # The library's own error names the broker's problem: give it the chance.
        session.send(
            args.timeout + deadline.SLACK,
            "send the cast",
            lambda: client.cast(args.context, args.method, **kwargs),
        )
        url = client.transport.url.masked()
    if args.json:
        sent = {
            "method": args.method,
            "topic": args.topic,
            "server": args.server,
            "fanout": args.fanout,
            "url": url,
        }
        out.write(json.dumps(sent, sort_keys=True) + "\n")
    else:
        to = f"{args.topic}.{args.server}" if args.server else args.topic
        how = "every server of " if args.fanout else ""
        out.write(f"cast {args.method} to {how}{to} on {url}\n")
    return failures.DONE


# -- rpcframe stream ------------------------------------------------------------------------


def _stream(args: argparse.Namespace, out: TextIO) -> int:
    kwargs = _arguments(args)
    with opened(args) as session:
        client = session.client
        chunks = session.send(
            args.timeout,
            "send the call",
            lambda: client.stream(args.context, args.method, window=args.window, **kwargs),
        )
        # Leaving the block (the end, an error, Ctrl-C) closes the stream:
        # the server is told, and closes its generator.
        with chunks:
            try:
                for chunk in chunks:
                    out.write(show(chunk, args.json) + "\n")
                    out.flush()
            except exceptions.MessagingTimeout:
                raise no_reply(
                    f"ending the stream of {args.method} ({chunks.position} chunks so far)",
                    args.timeout,
                ) from None
            except exceptions.StreamNotSupported:
                raise failures.CommandFailed(
                    f"{args.method} does not stream: the server answered with one reply "
                    "(use rpcframe call for it)"
                ) from None
            except Exception as exc:  # noqa: BLE001 - whatever the endpoint raised, in one line
                line = remote_error(args.method, exc, chunks.server)
                raise failures.CommandFailed(f"{line} (after {chunks.position} chunks)") from None
    return failures.DONE


# -- argument parsing -----------------------------------------------------------------------


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", required=True, help="the method to invoke")
    parser.add_argument(
        "--args",
        type=_json_object,
        metavar="JSON",
        help="the method's arguments, a JSON object (key=value pairs add to it)",
    )
    parser.add_argument(
        "pairs",
        nargs="*",
        type=_pair,
        metavar="key=value",
        help="an argument; the value is read as JSON if it is JSON, else as a string",
    )
    parser.add_argument(
        "--context",
        type=_json_object,
        default={},
        metavar="JSON",
        help="the request context, a JSON object (default {})",
    )
    parser.add_argument("--namespace", help="the endpoints' namespace")
    parser.add_argument("--version", help="the version to ask for, e.g. 1.2")


def _window(text: str) -> int:
    window = values.count(1)(text)
    if window > handles.MAX_WINDOW:
        raise argparse.ArgumentTypeError(f"must be at most {handles.MAX_WINDOW}, got {window}")
    return window


def add_commands(commands: Any) -> None:
    """Add ``call``, ``cast`` and ``stream`` to the ``rpcframe`` command's subparsers."""
    call = commands.add_parser(
        "call",
        help="call a method and print its result",
        description="Call a method on a server of --topic and print its result (as JSON "
        "with --json). Exits 0 with the result, 1 if the method raised (one line naming "
        "the exception) or the broker cannot be reached, 2 for a bad option or argument, "
        "3 if no reply came within --timeout, 130 on Ctrl-C (the server is told).",
    )
    add_target_options(call, "to wait for the reply, sending included")
    _add_request_options(call)
    call.set_defaults(run=_call)

    cast = commands.add_parser(
        "cast",
        help="send a request that gets no reply",
        description="Send a request to a server of --topic (every server with --fanout) "
        "and return once the broker took it. Exits 0 once it took it, 1 if the broker "
        "cannot be reached within --timeout, 2 for a bad option or argument, 130 on Ctrl-C.",
    )
    add_target_options(cast, "to wait for the broker to take the request")
    _add_request_options(cast)
    cast.add_argument(
        "--fanout", action="store_true", help="send to every server listening on the topic"
    )
    cast.set_defaults(run=_cast)

    stream = commands.add_parser(
        "stream",
        help="print what a streaming method yields, as it arrives",
        description="Call a streaming (generator) method and print each chunk on a line "
        "of its own as it arrives (JSON lines with --json). Exits 0 at the end of the "
        "stream, 1 if the method raised or does not stream or the broker cannot be "
        "reached, 2 for a bad option or argument, 3 if the stream did not end within "
        "--timeout, 130 on Ctrl-C (the stream is closed: the server is told).",
    )
    add_target_options(stream, "for the whole stream, sending included")
    _add_request_options(stream)
    stream.add_argument(
        "--window",
        type=_window,
        default=64,
        help="chunks the server may send ahead of those printed (default 64)",
    )
    stream.set_defaults(run=_stream)
