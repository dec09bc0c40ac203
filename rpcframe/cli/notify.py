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
import logging
import threading
from typing import Any, TextIO

from oslo_config import cfg

import rpcframe
from rpcframe import exceptions
from rpcframe.notify import Sender, hooks
from rpcframe.notify.dispatcher import PRIORITIES

__all__ = ["add_commands"]

LOG = logging.getLogger(__name__)


def _conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], default_config_files=list(args.config_file or []), default_config_dirs=[])
    return conf


def _topics(args: argparse.Namespace, transport: rpcframe.Transport) -> list[str]:
    """``--topic``, or else ``[oslo_messaging_notifications] topics``."""
    return args.topic or list(transport.conf.oslo_messaging_notifications.topics)


def _json_argument(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{what} must be JSON ({exc}): {text!r}") from None


# -- rpcframe notify ----------------------------------------------------------------------


def _notify(args: argparse.Namespace, out: TextIO) -> int:
    conf = _conf(args)
    sent: list[hooks.Publication] = []
    with rpcframe.get_notification_transport(conf, args.url) as transport:
        notifier = rpcframe.Notifier(
            transport, args.publisher_id, driver=args.driver, topics=args.topic
        )
        failures: list[hooks.Publication] = []
        with (
            hooks.after_publish.connected(sent.append),
            hooks.publish_failed.connected(failures.append),
        ):
            send = getattr(notifier, args.priority)  # a method per priority
            send(args.context, args.event_type, args.payload)
        if failures:
            errors = "; ".join(f"{name}: {exc}" for name, exc in failures[0].errors.items())
            out.write(f"not sent: {errors}\n")
            return 1
        message = sent[0].message
        topics = ", ".join(_topics(args, transport))
        out.write(
            f"sent {message['priority']} {message['event_type']!r} from "
            f"{message['publisher_id']!r} to {topics} on {transport.url.masked()} "
            f"(message_id {message['message_id']})\n"
        )
    return 0


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
    conf = _conf(args)
    rules: dict[str, str] = {}
    if args.event_type:
        rules["event_type"] = fnmatch.translate(args.event_type)
    if args.publisher:
        rules["publisher_id"] = fnmatch.translate(args.publisher)
    # Only the priorities asked for get a method, so only those are subscribed to.
    priorities = args.priority or PRIORITIES
    printer = _endpoint(priorities, rules, out, args.json, args.count)
    with rpcframe.get_notification_transport(conf, args.url) as transport:
        targets = [
            rpcframe.Target(topic=t, exchange=args.exchange) for t in _topics(args, transport)
        ]
        # Requeue what arrives after --count was reached, where the driver can.
        listener = rpcframe.get_notification_listener(
            transport,
            targets,
            [printer],
            pool=args.pool,
            allow_requeue=transport.capabilities.requeue,
        )
        # One worker: notifications print in the order they arrive.
        listener.start(override_pool_size=1)
        try:
            # A foreground command: it runs until told to stop (Ctrl-C), for
            # --duration seconds, or until --count notifications were shown.
            printer.done.wait(args.duration)
        except KeyboardInterrupt:
            pass
        finally:
            listener.stop()
            listener.wait()
    if args.count is not None and printer.shown < args.count:
        LOG.warning("shown %d of the %d notifications asked for", printer.shown, args.count)
        return 1
    return 0


# -- argument parsing -----------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help="notification transport URL (default: from the configuration)"
    )
    parser.add_argument(
        "--config-file",
        action="append",
        metavar="PATH",
        help="an oslo.config file to read options from (repeatable)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        help="topic (repeatable; default: [oslo_messaging_notifications] topics)",
    )


def add_commands(commands: Any) -> None:
    """Add ``notify`` and ``listen`` to the ``rpcframe`` command's subparsers."""
    notify = commands.add_parser("notify", help="send one notification")
    _common(notify)
    notify.add_argument("--event-type", required=True, help="e.g. compute.instance.create.end")
    notify.add_argument("--priority", default="info", choices=PRIORITIES, help="default info")
    notify.add_argument("--publisher-id", default="rpcframe-cli", help="default rpcframe-cli")
    notify.add_argument(
        "--driver", default="messagingv2", help="notifier driver (default messagingv2)"
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

    listen = commands.add_parser("listen", help="print notifications as they arrive")
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
    listen.add_argument("--count", type=int, help="exit after showing this many")
    listen.add_argument("--duration", type=float, help="exit after this many seconds")
    listen.set_defaults(run=_listen)
