"""The oslo.messaging side of the interop tests, run in its own process.

``python -m tests.functional.oslo_peer server URL EXCHANGE TOPIC NAME``
serves the interop endpoints with oslo.messaging until its standard input
closes (it prints ``ready`` first). ``... client URL EXCHANGE TOPIC``
calls an rpcframe server with oslo.messaging and prints one JSON object
with every outcome; ``... call URL EXCHANGE TOPIC METHOD KWARGS_JSON`` makes
one call and prints its outcome. ``... notify URL EXCHANGE TOPIC`` sends notifications,
``... listen URL EXCHANGE TOPIC COUNT`` receives them and prints them.
``... fleet URL EXCHANGE TOPIC SERVER[,SERVER...] VALUE`` makes round-robin
and direct ``whoami`` calls and casts ``VALUE`` to every server (fanout).
``... caster URL EXCHANGE`` reads ``TOPIC VALUE`` lines and casts each value
to every server of the topic, printing ``sent`` after each.
``... draw HOSTNAME PROCESSNAME LOCK_PATH`` reads counts and draws that many
queue-manager names for each, printing them as JSON.

``--config-file PATH`` before the command reads the options from that file
(both sides read the same file); an empty URL then means its
``transport_url``.

Only oslo.messaging is imported here, never rpcframe, so the two libraries
meet on the wire and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from typing import Any

import oslo_messaging as om
from oslo_config import cfg

from tests.functional.interop_common import InteropEndpoint

ALLOWED = ["tests.functional.interop_common"]


class Endpoint(InteropEndpoint):
    target = om.Target(version="1.3")


class AdminEndpoint:
    target = om.Target(namespace="admin", version="2.1")

    def ping(self, ctxt: Any) -> str:
        return "admin-pong"


#: The configuration file of ``--config-file``, if any.
CONFIG_FILES: list[str] = []


def _conf(exchange: str) -> cfg.ConfigOpts:
    # oslo.messaging 18 registers some options (tracing) on the global
    # cfg.CONF only, so it must be the one used here.
    conf = cfg.CONF
    om.set_transport_defaults(exchange)
    conf([f"--config-file={path}" for path in CONFIG_FILES])
    return conf


def _transport(conf: cfg.ConfigOpts, url: str) -> Any:
    return om.get_rpc_transport(conf, url or None, allowed_remote_exmods=ALLOWED)


def serve(url: str, exchange: str, topic: str, name: str) -> None:
    conf = _conf(exchange)
    transport = _transport(conf, url)
    server = om.get_rpc_server(
        transport,
        om.Target(topic=topic, server=name, exchange=exchange),
        [Endpoint(name), AdminEndpoint()],
        executor="threading",
    )
    server.start()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our standard input
    server.stop()
    server.wait()
    transport.cleanup()


def _outcome(fn: Any) -> dict[str, Any]:
    try:
        return {"result": fn()}
    except om.RemoteError as exc:
        return {"error": "RemoteError", "exc_type": exc.exc_type, "value": str(exc.value)}
    except Exception as exc:
        return {
            "error": type(exc).__name__,
            "module": type(exc).__module__,
            "message": str(exc).splitlines()[0] if str(exc) else "",
            "code": getattr(exc, "code", None),
        }


def call(url: str, exchange: str, topic: str) -> None:
    conf = _conf(exchange)
    transport = _transport(conf, url)
    target = om.Target(topic=topic, exchange=exchange, version="1.0")
    client = om.get_rpc_client(transport, target, timeout=20)
    ctxt = {"user_id": "oslo-user", "roles": ["reader"], "request_id": "req-oslo"}
    outcomes = {
        "add": _outcome(lambda: client.call(ctxt, "add", a=2, b=40)),
        "context": _outcome(lambda: client.call(ctxt, "context")),
        "fail_builtin": _outcome(lambda: client.call(ctxt, "fail_builtin", message="bad value")),
        "fail_custom": _outcome(lambda: client.call(ctxt, "fail_custom", code=7)),
        "too_new": _outcome(lambda: client.prepare(version="2.0").call(ctxt, "add", a=1, b=1)),
        "newer_minor": _outcome(lambda: client.prepare(version="1.9").call(ctxt, "add", a=1, b=1)),
        "no_such_method": _outcome(lambda: client.call(ctxt, "no_such_method")),
        "admin_ping": _outcome(
            lambda: client.prepare(namespace="admin", version="2.0").call(ctxt, "ping")
        ),
        "direct": _outcome(lambda: client.prepare(server="rf-2").call(ctxt, "whoami")),
        "cast": _outcome(lambda: client.cast(ctxt, "record", value="cast-from-oslo")),
        "fanout": _outcome(
            lambda: client.prepare(fanout=True).cast(ctxt, "record", value="fanout-from-oslo")
        ),
    }
    print(json.dumps(outcomes), flush=True)
    transport.cleanup()


def call_one(url: str, exchange: str, topic: str, method: str, kwargs: str) -> None:
    conf = _conf(exchange)
    transport = _transport(conf, url)
    client = om.get_rpc_client(transport, om.Target(topic=topic, exchange=exchange), timeout=20)
    ctxt = {"user_id": "oslo-user"}
    print(json.dumps(_outcome(lambda: client.call(ctxt, method, **json.loads(kwargs)))), flush=True)
    transport.cleanup()


def notify(url: str, exchange: str, topic: str) -> None:
    conf = _conf(exchange)
    transport = om.get_notification_transport(conf, url or None)
    notifier = om.Notifier(
        transport, publisher_id="oslo.peer", driver="messagingv2", topics=[topic]
    )
    # oslo.messaging drops plain-dict contexts from notifications; a
    # RequestContext is sent (redacted).
    from oslo_context import context

    ctxt = context.RequestContext(user_id="oslo-user", project_id="oslo-project")
    notifier.info(ctxt, "peer.info", {"n": 1})
    notifier.error(ctxt, "peer.error", {"n": 2})
    print("sent", flush=True)
    transport.cleanup()


class _Collector:
    def __init__(self, expected: int) -> None:
        self.got: list[dict[str, Any]] = []
        self.expected = expected
        self.done = threading.Event()

    def _keep(self, priority: str, ctxt: Any, publisher_id: str, event_type: str, payload: Any):
        self.got.append(
            {
                "priority": priority,
                "ctxt": ctxt,
                "publisher_id": publisher_id,
                "event_type": event_type,
                "payload": payload,
            }
        )
        if len(self.got) >= self.expected:
            self.done.set()

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any):
        self._keep("info", ctxt, publisher_id, event_type, payload)

    def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any, metadata: Any):
        self._keep("error", ctxt, publisher_id, event_type, payload)


def listen(url: str, exchange: str, topic: str, count: str) -> None:
    conf = _conf(exchange)
    transport = om.get_notification_transport(conf, url or None)
    collector = _Collector(int(count))
    listener = om.get_notification_listener(
        transport, [om.Target(topic=topic, exchange=exchange)], [collector], executor="threading"
    )
    listener.start()
    collector.done.wait(30)
    listener.stop()
    listener.wait()
    print(json.dumps(collector.got), flush=True)
    transport.cleanup()


def fleet(url: str, exchange: str, topic: str, servers: str, value: str) -> None:
    """Calls and casts of an oslo.messaging client in a mixed fleet."""
    conf = _conf(exchange)
    transport = _transport(conf, url)
    client = om.get_rpc_client(transport, om.Target(topic=topic, exchange=exchange), timeout=20)
    ctxt = {"user_id": "oslo-fleet"}
    names = servers.split(",")
    outcomes = {
        "round_robin": [client.call(ctxt, "whoami") for _ in range(4 * len(names))],
        "direct": {name: client.prepare(server=name).call(ctxt, "whoami") for name in names},
    }
    client.prepare(fanout=True).cast(ctxt, "record", value=value)
    print(json.dumps(outcomes), flush=True)
    transport.cleanup()


def caster(url: str, exchange: str) -> None:
    conf = _conf(exchange)
    transport = _transport(conf, url)
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        topic, value = line.split()
        client = om.get_rpc_client(transport, om.Target(topic=topic, exchange=exchange))
        client.prepare(fanout=True).cast({}, "record", value=value)
        print("sent", flush=True)
    transport.cleanup()


def draw(hostname: str, processname: str, lock_path: str) -> None:
    """Queue-manager names drawn by oslo.messaging's own QManager, on request."""
    from oslo_messaging._drivers import amqpdriver

    conf = _conf("unused")
    conf.set_override("lock_path", lock_path, group="oslo_concurrency")
    manager = amqpdriver.QManager(hostname=hostname, processname=processname)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps([manager.get() for _ in range(int(line))]), flush=True)


if __name__ == "__main__":
    if os.environ.get("RPCFRAME_PEER_DEBUG"):  # oslo.messaging's debug log on stderr
        logging.basicConfig(level=logging.DEBUG)
    args = sys.argv[1:]
    if args[0] == "--config-file":
        CONFIG_FILES.append(args[1])
        args = args[2:]
    commands = {
        "server": serve,
        "client": call,
        "call": call_one,
        "notify": notify,
        "listen": listen,
        "fleet": fleet,
        "caster": caster,
        "draw": draw,
    }
    commands[args[0]](*args[1:])
