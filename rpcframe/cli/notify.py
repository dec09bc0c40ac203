"""``rpcframe notify`` and ``rpcframe listen``: the notification subcommands.

``rpcframe notify`` sends one notification::

    rpcframe notify --url rabbit://guest:guest@localhost/ \\
        --event-type compute.instance.create.end --priority info \\
        --publisher-id compute.host1 '{"instance_id": "i-1"}'

``rpcframe listen`` prints notifications as they arrive, pretty or as JSON
lines, optionally only some event types, priorities or publishers::

    rpcframe listen --url rabbit://guest:guest@localhost/ --topic notifications \\
        --event-type 'compute.instance.*' --priority error --priority critical

Without ``--url`` both use the configuration files given with
``--config-file`` (``[oslo_messaging_notifications] transport_url``, then
``[DEFAULT] transport_url``). ``listen`` consumes what it prints (it is a
listener like any other): give it a ``--pool`` of its own to watch a topic
without taking notifications away from the services that read it.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import threading
import time
from typing import Any, TextIO

import rpcframe
from rpcframe import exceptions
from rpcframe.cli import config, deadline, failures, values
from rpcframe.notify import Sender, hooks
from rpcframe.notify.dispatcher import PRIORITIES

__all__ = ["add_commands"]


def _topics(args: argparse.Namespace, transport: rpcframe.Transport) -> list[str]:
    """``--topic``, or else ``[oslo_messaging_notifications] topics``."""
    return args.topic or list(transport.conf.oslo_messaging_notifications.topics)


def _json_argument(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what} must be JSON ({exc}): {text!r}") from None


# -- rpcframe notify ----------------------------------------------------------------------

#: What a driver raises when the broker did not take a notification in time
#: or at all: the broker cannot be reached, rather than refusing this one.
_UNREACHABLE = (
    exceptions.MessagingTimeout,
    exceptions.MessageDeliveryFailure,
    exceptions.TransportBroken,
)


def _notify(args: argparse.Namespace, out: TextIO) -> int:
    conf = config.load(args.config_file)
    transport = rpcframe.get_notification_transport(conf, args.url)
    try:
        # A send waits for the broker at most rpc_response_timeout: --timeout.
        transport.conf.set_override("rpc_response_timeout", args.timeout)
        notifier = rpcframe.Notifier(
            transport, args.publisher_id, driver=args.driver, topics=args.topic, retry=args.retry
        )
        message = _send(notifier, args)
        topics = ", ".join(_topics(args, transport))
        out.write(
            f"sent {message['priority']} {message['event_type']!r} from "
            f"{message['publisher_id']!r} to {topics} on {transport.url.masked()} "
            f"(message_id {message['message_id']})\n"
        )
    finally:
        deadline.settle("close the transport", transport.cleanup)
    return failures.DONE


def _send(notifier: rpcframe.Notifier, args: argparse.Namespace) -> Any:
    """Send the notification ``args`` describe; the message sent, or CommandFailed."""
    url = notifier.transport.url
    outcome: list[hooks.Publication] = []

    def ours(publication: hooks.Publication) -> None:
        if publication.notifier is notifier:  # the hooks see every notifier of the process
            outcome.append(publication)

    send = getattr(notifier, args.priority)  # a method per priority
    with hooks.after_publish.connected(ours), hooks.publish_failed.connected(ours):
        try:
            deadline.within(
                args.timeout + deadline.SLACK,
                "send the notification",
                lambda: send(args.context, args.event_type, args.payload),
            )
        except deadline.Overdue as exc:
            raise failures.cannot_reach(url, exc) from None
    errors = outcome[0].errors
    if errors:
        why = "; ".join(f"{name}: {exc}" for name, exc in errors.items())
        if all(isinstance(exc, _UNREACHABLE) for exc in errors.values()):
            raise failures.cannot_reach(url, why)
        raise failures.CommandFailed(f"not sent to {url.masked()}: {why}")
    return outcome[0].message


# -- rpcframe listen ----------------------------------------------------------------------


class _Printer:
    """Prints what it is shown; :func:`_endpoint` gives it priority methods."""

    def __init__(self, out: TextIO, as_json: bool, count: int | None) -> None:
        self._out = out
        self._as_json = as_json
        self._count = count
        self._lock = threading.Lock()
        self.shown = 0
        self.done = threading.Event()

    def _show(self, priority: str, *notification: Any) -> None:
        """Show what a listener endpoint's ``priority`` method is given."""
        ctxt, publisher_id, event_type, payload, metadata = notification
        sender = getattr(metadata, "sender", None)
        with self._lock:
            if self.done.is_set():  # already shown enough; the listener is stopping
                raise exceptions.Requeue()
            shown = {
                "priority": priority,
                "event_type": event_type,
                "publisher_id": publisher_id,
                "timestamp": metadata.get("timestamp"),
                "message_id": metadata.get("message_id"),
                "sender": sender.to_wire() if isinstance(sender, Sender) else None,
                "context": ctxt,
                "payload": payload,
            }
            if self._as_json:
                text = json.dumps(shown, sort_keys=True, default=str) + "\n"
            else:
                text = _pretty(shown, sender)
            self._out.write(text)
            self._out.flush()
            self.shown += 1
            if self._count is not None and self.shown >= self._count:
                self.done.set()


def _endpoint(
    priorities: list[str], rules: dict[str, str], out: TextIO, as_json: bool, count: int | None
) -> _Printer:
    """A printer with a method for each priority to subscribe to, and the filter."""

    def method_for(priority: str) -> Any:
        def method(self: _Printer, *args: Any) -> None:
            self._show(priority, *args)

        return method

    namespace: dict[str, Any] = {p: method_for(p) for p in priorities}
    if rules:
        namespace["filter_rule"] = rpcframe.NotificationFilter(
            event_type=rules.get("event_type"), publisher_id=rules.get("publisher_id")
        )
    cls = type("Printer", (_Printer,), namespace)
    return cls(out, as_json, count)


def _pretty(shown: dict[str, Any], sender: Any) -> str:
    """A notification as :meth:`_Printer._show` gathered it, for people to read."""
    who = f" ({sender})" if sender is not None else ""
    payload = json.dumps(shown["payload"], indent=2, sort_keys=True, default=str)
    lines = [
        f"{shown['timestamp']}  {shown['priority'].upper():<8} {shown['event_type']}  "
        f"from {shown['publisher_id']}{who}",
        f"    context: {json.dumps(shown['context'], sort_keys=True, default=str)}",
        "    payload: " + payload.replace("\n", "\n    "),
        "",
    ]
    return "\n".join(lines)


def _listen(args: argparse.Namespace, out: TextIO) -> int:
    # --duration counts from now: connecting is part of it.
    ends = None if args.duration is None else time.monotonic() + args.duration
    conf = config.load(args.config_file)
    rules: dict[str, str] = {}
    if args.event_type:
        rules["event_type"] = fnmatch.translate(args.event_type)
    if args.publisher:
        rules["publisher_id"] = fnmatch.translate(args.publisher)
    # Only the priorities asked for get a method, so only those are subscribed to.
    priorities = args.priority or PRIORITIES
    printer = _endpoint(priorities, rules, out, args.json, args.count)
    transport = rpcframe.get_notification_transport(conf, args.url)
    try:
        topics = _topics(args, transport)
        targets = [rpcframe.Target(topic=t, exchange=args.exchange) for t in topics]
        # Requeue what arrives after --count was reached, where the driver can.
        listener = rpcframe.get_notification_listener(
            transport,
            targets,
            [printer],
            pool=args.pool,
            allow_requeue=transport.capabilities.requeue,
        )
        # One worker: notifications print in the order they arrive.
        deadline.start(
            listener,
            args.timeout if ends is None else min(args.timeout, args.duration),
            override_pool_size=1,
        )
        try:
            print(
                f"rpcframe listen: listening to {', '.join(topics)} on "
                f"{transport.url.masked()}; Ctrl-C stops",
                file=sys.stderr,
                flush=True,
            )
            # A foreground command: it runs until told to stop (Ctrl-C), for
            # --duration seconds, or until --count notifications were shown.
            deadline.wait(printer.done, None if ends is None else max(0.0, ends - time.monotonic()))
        finally:
            deadline.stop(listener)
    finally:
        # Also what ends a start given up on: its connection attempts stop.
        deadline.settle("close the transport", transport.cleanup)
    if args.count is not None and printer.shown < args.count:
        raise failures.CommandFailed(
            f"shown {printer.shown} of the {args.count} notifications asked for"
        )
    return failures.DONE


# -- argument parsing -----------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="notification transport URL (default: from the configuration)"
    )
    config.add_config_file(parser)
    parser.add_argument(
        "--topic",
        action="append",
        help="topic (repeatable; default: [oslo_messaging_notifications] topics)",
    )


def add_commands(commands: Any) -> None:
    """Add ``notify`` and ``listen`` to the ``rpcframe`` command's subparsers."""
    notify = commands.add_parser(
        "notify",
        help="send one notification",
        description="Send one notification. Exits 0 once the broker took it, 1 if it "
        "could not be sent (the broker not reached within --timeout and --retry), "
        "2 for a bad option, URL, driver or payload, 130 on Ctrl-C.",
    )
    _common(notify)
    notify.add_argument("--event-type", required=True, help="e.g. compute.instance.create.end")
    notify.add_argument("--priority", default="info", choices=PRIORITIES, help="default info")
    notify.add_argument("--publisher-id", default="rpcframe-cli", help="default rpcframe-cli")
    notify.add_argument(
        "--driver", default="messagingv2", help="notifier driver (default messagingv2)"
    )
    values.add_timeout(notify, "to wait for the broker to take the notification")
    notify.add_argument(
        "--retry",
        type=values.count(-1),
        default=2,
        help="connection attempts while sending, as the Notifier's retry: -1 without limit "
        "(still bounded by --timeout) (default 2)",
    )
    notify.add_argument(
        "--context",
        default={},
        type=lambda text: _json_argument(text, "--context"),
        help="the context, a JSON object (secrets are removed before sending)",
    )
    notify.add_argument(
        "payload",
        nargs="?",
        default={},
        type=lambda text: _json_argument(text, "the payload"),
        help="the payload, as JSON (default {})",
    )
    notify.set_defaults(run=_notify)

    listen = commands.add_parser(
        "listen",
        help="print notifications as they arrive",
        description="Print notifications as they arrive, until Ctrl-C (exit 130), "
        "--count of them (exit 0) or --duration seconds (exit 0, or 1 if fewer than "
        "--count were shown). Exits 1 if the broker cannot be reached, 2 for a bad "
        "option, URL or driver. Says on stderr when it is listening.",
    )
    _common(listen)
    listen.add_argument("--exchange", help="default: control_exchange")
    listen.add_argument("--pool", help="listen in this pool (a queue of its own)")
    listen.add_argument("--event-type", help="only event types matching this pattern (shell-style)")
    listen.add_argument(
        "--priority",
        action="append",
        choices=PRIORITIES,
        help="only this priority (repeatable)",
    )
    listen.add_argument("--publisher", help="only publisher ids matching this pattern")
    listen.add_argument("--json", action="store_true", help="one JSON object per line")
    listen.add_argument("--count", type=values.count(1), help="exit after showing this many")
    listen.add_argument(
        "--duration",
        type=values.seconds,
        help="exit after this many seconds, connecting included, whatever the broker does",
    )
    values.add_timeout(listen, "to wait for the broker when starting, at most --duration")
    listen.set_defaults(run=_listen)
