"""The optional eventlet executor, each case in a fresh process."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("eventlet")

SERVE = """
import warnings; warnings.simplefilter("ignore")
{prelude}
from oslo_config import cfg
import rpcframe
conf = cfg.ConfigOpts(); conf([])
t = rpcframe.get_rpc_transport(conf, "fake://")
class EP:
    def echo(self, ctxt, value):
        return value
s = rpcframe.get_rpc_server(t, rpcframe.Target(topic="t", server="s"), [EP()], executor="eventlet")
try:
    s.start()
except rpcframe.ExecutorLoadFailure as exc:
    print("refused:", exc)
else:
    c = rpcframe.get_rpc_client(t, rpcframe.Target(topic="t"), timeout=10)
    print("result:", c.call({{}}, "echo", value="green"))
    s.stop(); s.wait()
t.cleanup()
"""


def run(prelude):
    code = SERVE.format(prelude=prelude)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_it_serves_in_a_monkey_patched_process():
    assert "result: green" in run("import eventlet; eventlet.monkey_patch()")


def test_it_is_refused_clearly_without_monkey_patching():
    out = run("")
    assert "refused:" in out and "monkey_patch" in out
