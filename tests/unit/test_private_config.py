"""Nothing in rpcframe registers on, or reads, the global cfg.CONF unasked."""

from __future__ import annotations

import subprocess
import sys

EXERCISE = """
import threading
from oslo_config import cfg

def registered():
    return sorted(cfg.CONF._opts) + sorted(cfg.CONF._groups)

before = registered()  # what oslo.config registers for itself
import rpcframe

conf = cfg.ConfigOpts()
conf([])
done = threading.Event()

class Endpoint:
    def add(self, ctxt, a, b):
        return a + b

class Listener:
    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        done.set()

with rpcframe.get_rpc_transport(conf, "fake://") as transport:
    target = rpcframe.Target(topic="t", server="s")
    server = rpcframe.get_rpc_server(transport, target, [Endpoint()])
    server.start()
    client = rpcframe.get_rpc_client(transport, rpcframe.Target(topic="t"))
    assert client.call({}, "add", a=1, b=2) == 3
    server.stop(); server.wait()

with rpcframe.get_notification_transport(conf, "fake://") as transport:
    listener = rpcframe.get_notification_listener(
        transport, [rpcframe.Target(topic="notifications")], [Listener()]
    )
    listener.start()
    rpcframe.Notifier(transport, "p", driver="messagingv2").info({}, "e", {})
    assert done.wait(10)
    listener.stop(); listener.wait()

added = sorted(set(registered()) - set(before))
print("GLOBAL:", added)
assert added == [], added
"""


def test_rpc_and_notifications_leave_the_global_config_alone():
    done = subprocess.run(
        [sys.executable, "-c", EXERCISE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GLOBAL: []" in done.stdout
